//! Helpers shared by the fuzz targets: a scratch directory holding the fixed files a target
//! needs next to the input it writes, a small analysed model, a tokio runtime, and an
//! in-memory stream that replays the fuzz input as a peer's bytes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use dicesim_plan::graph::Graph;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The files of docs/examples (the worked two-board example), written once into the
/// scratch directory so that scenarios and calibrations can name them.
const EXAMPLE_FILES: &[(&str, &str)] = &[
    (
        "platforms/two-boards.toml",
        include_str!("../../docs/examples/platforms/two-boards.toml"),
    ),
    (
        "mappings/alexnet-2way.toml",
        include_str!("../../docs/examples/mappings/alexnet-2way.toml"),
    ),
    (
        "mappings/alexnet-2way.json",
        include_str!("../../docs/examples/mappings/alexnet-2way.json"),
    ),
    (
        "calibration/cal.toml",
        include_str!("../../docs/examples/calibration/cal.toml"),
    ),
    (
        "calibration/b.cpu.csv",
        include_str!("../../docs/examples/calibration/b.cpu.csv"),
    ),
];

/// A per-process directory with the example files in it, under the temporary folder
/// (`scripts/fuzz.sh` points that at a folder of its own and removes it at the end).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dicesim-fuzz-{}", std::process::id()));
        for (name, text) in EXAMPLE_FILES {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().expect("has a parent")).expect("scratch dir");
            std::fs::write(&p, text).expect("scratch file");
        }
        dir
    })
}

/// Writes `data` to `name` in the scratch directory; its path.
pub fn write_input(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    let mut f = std::fs::File::create(&p).expect("scratch input");
    f.write_all(data).expect("scratch input written");
    p
}

/// The graph the example mappings describe (alexnet at 64 px), analysed once.
pub fn alexnet() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| dicesim_plan::model::zoo_graph("alexnet", 64).expect("zoo model"))
}

/// A single-threaded runtime with timers, built once.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

/// A peer whose bytes are the fuzz input (then end of stream); what is written to it is
/// dropped.
pub struct Replay<'a> {
    data: &'a [u8],
}

impl<'a> Replay<'a> {
    /// A peer sending `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Replay { data }
    }
}

impl AsyncRead for Replay<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // short reads (a few bytes at a time) exercise the readers' reassembly
        let n = buf.remaining().min(self.data.len()).min(7);
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
