//! Completion for `kubectl zkscale <TAB>`: kubectl (1.26+) completes a plugin's arguments by
//! running `kubectl_complete-zkscale <args…>` and reading Cobra's `__complete` protocol back:
//! one candidate per line, then `:<directive>`. `make install` links that name to this binary
//! (`kubectl-zkscale __complete <args…>` does the same). The candidates come from the same
//! clap definition as `--help` and the generated scripts, so they cannot drift.

use clap::{Arg, Command, CommandFactory};

use super::Cli;

/// Cobra's directive: do not fall back to file names.
const NO_FILE_COMP: u8 = 4;
/// Cobra's default directive: the shell may complete file names.
const DEFAULT: u8 = 0;

/// The lines kubectl reads for `args` (the words after `kubectl zkscale`, the last one being
/// completed, possibly empty).
pub fn complete(args: &[String]) -> Vec<String> {
    let mut root = Cli::command();
    // Argument details (how many values a flag takes) are only complete once built.
    root.build();
    let (candidates, directive) = candidates(&root, args);
    let mut lines = candidates;
    lines.push(format!(":{directive}"));
    lines
}

fn candidates(root: &Command, args: &[String]) -> (Vec<String>, u8) {
    let (last, before) = match args.split_last() {
        Some((last, before)) => (last.as_str(), before),
        None => ("", &[][..]),
    };
    // Walk the words before the last: subcommands narrow the command, flags that take a value
    // swallow the next word.
    let mut cmd = root;
    let mut pending: Option<&Arg> = None;
    for word in before {
        if pending.take().is_some() {
            continue;
        }
        if let Some(flag) = word.strip_prefix('-').filter(|_| !word.contains('=')) {
            if let Some(arg) = find_flag(cmd, flag) {
                if takes_value(arg) {
                    pending = Some(arg);
                }
            }
        } else if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
        }
    }
    if let Some(arg) = pending {
        // The value of a flag: its possible values, or files (`--kubeconfig`, `--log-file`).
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .filter(|v| v.starts_with(last))
            .collect();
        // No fixed values (`--kubeconfig`, `--log-file`, a name): let the shell offer files.
        let directive = if values.is_empty() {
            DEFAULT
        } else {
            NO_FILE_COMP
        };
        return (values, directive);
    }
    if last.starts_with('-') {
        let mut flags: Vec<String> = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .flat_map(|a| {
                let mut names: Vec<String> = a
                    .get_long_and_visible_aliases()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| format!("--{l}"))
                    .collect();
                names.extend(a.get_short().map(|s| format!("-{s}")));
                names
            })
            .chain(["--help".to_string()])
            .filter(|f| f.starts_with(last))
            .collect();
        if cmd.get_version().is_some() && "--version".starts_with(last) {
            flags.push("--version".into());
        }
        flags.sort();
        flags.dedup();
        return (flags, NO_FILE_COMP);
    }
    let mut words: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    // A positional with a fixed set of values (`completions <shell>`).
    for arg in cmd.get_positionals() {
        words.extend(
            arg.get_possible_values()
                .iter()
                .map(|v| v.get_name().to_string()),
        );
    }
    words.retain(|w| w.starts_with(last));
    (words, NO_FILE_COMP)
}

fn find_flag<'c>(cmd: &'c Command, flag: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| match flag.strip_prefix('-') {
        Some(long) => a
            .get_long_and_visible_aliases()
            .unwrap_or_default()
            .contains(&long),
        None => flag.len() == 1 && a.get_short() == flag.chars().next(),
    })
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values())
        && !matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::Count | clap::ArgAction::Help
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_words(words: &[&str]) -> Vec<String> {
        complete(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn subcommands_flags_and_values() {
        let top = complete_words(&[""]);
        for w in ["plan", "status", "post-render", "completions", ":4"] {
            assert!(top.contains(&w.to_string()), "{top:?}");
        }
        let pr = complete_words(&["post-render", "--"]);
        for w in [
            "--offline",
            "--check",
            "--execute",
            "--plan-only",
            "--timeout",
            "--force",
        ] {
            assert!(pr.contains(&w.to_string()), "{pr:?}");
        }
        assert!(!pr.contains(&"--output".to_string()), "{pr:?}");
        assert_eq!(complete_words(&["-o", ""]), ["text", "json", ":4"]);
        assert_eq!(
            complete_words(&["status", "--connect", "d"]),
            ["direct", ":4"]
        );
        assert_eq!(complete_words(&["-n", "x", "st"]), ["status", ":4"]);
        assert!(complete_words(&["completions", ""]).contains(&"bash".to_string()));
        // A file: no candidates, the shell completes file names.
        assert_eq!(complete_words(&["--kubeconfig", ""]), [":0"]);
    }
}
