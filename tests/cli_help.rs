//! `--help` of every subcommand: each option has a one-line explanation and shows its
//! default, so a newcomer can use the tool from its help alone.

mod common;
use common::bin;

const SUBCOMMANDS: &[&[&str]] = &[
    &["run"],
    &["explore"],
    &["worker"],
    &["hil"],
    &["emulate"],
    &["profile"],
    &["validate"],
    &["split"],
    &["infer"],
    &["zoo", "build"],
    &["zoo", "list"],
    &["inspect"],
    &["backends"],
];

fn help(cmd: &[&str]) -> String {
    let out = bin().args(cmd).arg("--help").output().unwrap();
    assert!(out.status.success(), "{cmd:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The options section of a help text, one entry per option (continuation lines joined).
fn options(text: &str) -> Vec<String> {
    let mut opts: Vec<String> = Vec::new();
    let body = text.split("Options:\n").nth(1).unwrap_or("");
    for l in body.lines() {
        let t = l.trim_start();
        if t.starts_with('-') {
            opts.push(t.to_string());
        } else if let Some(last) = opts.last_mut() {
            last.push(' ');
            last.push_str(t);
        }
    }
    opts
}

/// Options that need no default: help, and the required options (shown in the usage line).
fn exempt(opt: &str, usage: &str) -> bool {
    let flag = opt
        .split([' ', ','])
        .find(|w| w.starts_with("--"))
        .unwrap_or("");
    flag == "--help" || usage.contains(&format!(" {flag} <"))
}

#[test]
fn every_option_has_a_line_of_help_and_its_default() {
    let mut checked = 0;
    for cmd in SUBCOMMANDS {
        let text = help(cmd);
        let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap();
        for o in options(&text) {
            checked += 1;
            let words: Vec<&str> = o.split_whitespace().collect();
            let has_help = words.iter().skip(1).any(|w| !w.starts_with(['-', '<']));
            assert!(has_help, "{cmd:?}: `{o}` has no help text");
            let takes_value = o.split_whitespace().any(|w| w.starts_with('<'));
            if takes_value && !exempt(&o, usage) {
                assert!(o.contains("[default: "), "{cmd:?}: `{o}` shows no default");
            }
        }
        let about = text.lines().next().unwrap();
        assert!(!about.is_empty(), "{cmd:?} has no description");
    }
    assert!(
        checked > 40,
        "only {checked} options found: is the help parsed?"
    );
}

#[test]
fn profile_description_is_one_sentence_and_explore_shows_its_defaults() {
    let p = help(&["profile"]);
    let about = p.lines().next().unwrap();
    assert!(!about.contains("backend Per-layer"), "{about}");
    assert!(about.starts_with("Per-layer times"), "{about}");
    let e = help(&["explore"]);
    let budget = dicesim_sim::explore::ExploreOptions::default().budget;
    for w in [
        format!("[default: {budget}]"),
        "--threads".into(),
        "[default: all cores]".into(),
        "[default: the scenario's `seed`]".into(),
    ] {
        assert!(e.contains(&w), "`{w}` missing from explore --help:\n{e}");
    }
}
