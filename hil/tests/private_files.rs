//! Issue 19, item 1: root's temporary files cannot be planted in advance. A directory or a
//! symbolic link made beforehand at the old predictable paths (`dicesim-emulate-<pid>`,
//! `dicesim-cal-<pid>`) is neither used nor followed, and the token and logs are created
//! exclusively, mode 0600.

mod support;
use dicesim_hil::private::{create_private_dir_in, create_private_file};
use dicesim_hil::token::write_new_token;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use support::TmpDir;

/// A fresh folder of this test, removed when it ends.
fn scratch(name: &str) -> TmpDir {
    support::tmp("plant", name)
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn planted_directories_and_links_at_the_old_paths_are_not_used() {
    let base = scratch("dirs");
    let victim = base.join("victim");
    std::fs::create_dir(&victim).unwrap();
    let pid = std::process::id();
    for prefix in ["dicesim-emulate", "dicesim-cal"] {
        // what an attacker could plant before: the old names, as a link and as a directory
        symlink(&victim, base.join(format!("{prefix}-{pid}"))).unwrap();
        std::fs::create_dir(base.join(format!("{prefix}-{pid}-planted"))).unwrap();
        let d = create_private_dir_in(&base, prefix).unwrap();
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let random = name.strip_prefix(&format!("{prefix}-{pid}-")).unwrap();
        assert_eq!(random.len(), 32, "{name}: 128 random bits");
        assert!(std::fs::symlink_metadata(&d).unwrap().is_dir());
        assert_eq!(mode(&d), 0o700);
        // the run's files inside are created exclusively, 0600
        let tok = d.join("token");
        write_new_token(&tok).unwrap();
        assert_eq!(mode(&tok), 0o600);
        create_private_file(&d.join("worker0.log")).unwrap();
        assert_eq!(mode(&d.join("worker0.log")), 0o600);
    }
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
}

#[test]
fn a_planted_link_at_a_file_name_is_not_followed() {
    let base = scratch("files");
    let victim = base.join("passwd");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    for name in ["token", "worker0.log"] {
        symlink(&victim, base.join(name)).unwrap();
    }
    assert!(write_new_token(&base.join("token")).is_err());
    assert!(create_private_file(&base.join("worker0.log")).is_err());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    assert_eq!(mode(&victim), 0o644);
}
