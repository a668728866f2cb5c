//! Where post-render progress goes. Helm 3 shows a post-renderer's stderr only when it fails
//! and Helm 4 never does, so every line also goes to the controlling terminal (when stderr is
//! not already it) and to a log file; the engine adds Events and a status annotation on the
//! StatefulSet.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::engine::{Event, Progress};

pub struct PostRenderReporter {
    start: Instant,
    /// `(timestamped, sink)`.
    sinks: Mutex<Vec<(bool, Box<dyn Write + Send>)>>,
    pub log_path: Option<PathBuf>,
}

impl PostRenderReporter {
    /// `log_file`: `--log-file` / `ZKSCALE_LOG_FILE` (`-` for none); default
    /// `$XDG_STATE_HOME/zkscale/post-render.log`.
    pub fn new(log_file: Option<PathBuf>) -> PostRenderReporter {
        let mut sinks: Vec<(bool, Box<dyn Write + Send>)> =
            vec![(false, Box::new(std::io::stderr()))];
        if !std::io::stderr().is_terminal() {
            if let Ok(tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                sinks.push((false, Box::new(tty)));
            }
        }
        let path = match log_file {
            Some(p) if p.as_os_str() == "-" => None,
            Some(p) => Some(p),
            // The XDG spec: an empty or relative XDG_STATE_HOME is ignored (an empty one would
            // put the log in whatever directory helm runs in).
            None => std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
                .map(|d| d.join("zkscale/post-render.log")),
        };
        let mut log_path = None;
        let mut unwritable = None;
        if let Some(p) = path {
            let opened = p
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|_| {
                    // Non-blocking: a FIFO with no reader would otherwise hang the post-renderer
                    // (and Helm) at the open; one with a reader is refused below, since a reader
                    // that stops reading would hang it at a write.
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&p)
                })
                .and_then(|f| {
                    use std::os::unix::fs::FileTypeExt;
                    if f.metadata()?.file_type().is_fifo() {
                        Err(std::io::Error::other("a FIFO, not a file"))
                    } else {
                        Ok(f)
                    }
                });
            match opened {
                Ok(f) => {
                    sinks.push((true, Box::new(f)));
                    log_path = Some(p);
                }
                Err(e) => unwritable = Some(format!("{}: {e}", p.display())),
            }
        }
        let reporter = PostRenderReporter {
            start: Instant::now(),
            sinks: Mutex::new(sinks),
            log_path,
        };
        if let Some(why) = unwritable {
            // Not a reason to stop a run, but never silent: the log is where Helm 4 users look.
            reporter.line(&format!(
                "WARNING: cannot write the log file {why}; progress goes to stderr and the terminal only"
            ));
        }
        reporter
    }

    pub fn line(&self, line: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let wall = k8s_openapi::jiff::Timestamp::now();
        if let Ok(mut sinks) = self.sinks.lock() {
            for (stamped, w) in sinks.iter_mut() {
                let _ = if *stamped {
                    writeln!(
                        w,
                        "{wall:.0} pid {} [{t:>6.1}s] zkscale: {line}",
                        std::process::id()
                    )
                } else {
                    writeln!(w, "[{t:>6.1}s] zkscale: {line}")
                };
                let _ = w.flush();
            }
        }
    }
}

impl Progress for PostRenderReporter {
    fn event(&self, event: &Event) {
        self.line(&event.to_string());
    }
}
