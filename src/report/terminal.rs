//! The kubectl front end's progress: a line per event on stderr with the elapsed time (and,
//! on a terminal, a spinner naming what the run waits for), or JSON events on stdout.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Output;
use crate::engine::{Event, Progress};

pub struct Reporter {
    start: Instant,
    output: Output,
    /// On a terminal: what the run is waiting for, redrawn with a spinner until the next line.
    spinner: Option<Arc<Mutex<String>>>,
}

impl Reporter {
    pub fn new(output: Output) -> Reporter {
        let start = Instant::now();
        let spinner = (output == Output::Text && std::io::stderr().is_terminal()).then(|| {
            let current = Arc::new(Mutex::new(String::new()));
            let shown = current.clone();
            std::thread::spawn(move || {
                for frame in ["|", "/", "-", "\\"].iter().cycle() {
                    std::thread::sleep(Duration::from_millis(120));
                    let what = shown.lock().map(|s| s.clone()).unwrap_or_default();
                    if !what.is_empty() {
                        let t = start.elapsed().as_secs_f64();
                        eprint!("\r\x1b[2K[{t:>6.1}s] {frame} {what}");
                    }
                }
            });
            current
        });
        Reporter {
            start,
            output,
            spinner,
        }
    }
}

impl Progress for Reporter {
    fn event(&self, event: &Event) {
        let t = self.start.elapsed().as_secs_f64();
        if self.output == Output::Json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        let line = event.to_string();
        let mut err = std::io::stderr().lock();
        if let Some(current) = &self.spinner {
            let _ = write!(err, "\r\x1b[2K");
            if let Ok(mut c) = current.lock() {
                *c = match event {
                    Event::Step { from, to, .. } => {
                        format!("step {from}→{to}: checking the ensemble")
                    }
                    Event::Action { description } => format!("{description}: waiting"),
                    _ => String::new(),
                };
            }
        }
        let _ = writeln!(err, "[{t:>6.1}s] {line}");
    }
}
