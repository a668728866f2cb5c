//! Build metadata for `kubectl zkscale version`: the commit (git, when building from a
//! checkout; `ZKSCALE_COMMIT` overrides, as release builds from an archive set it) and the build
//! date (`SOURCE_DATE_EPOCH` for reproducible builds, else now).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ZKSCALE_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // HEAD of this checkout: in a git worktree `.git` is a file naming the real git dir, and a
    // path that does not exist makes cargo rebuild the crate on every invocation.
    if let Some(head) = git_head() {
        println!("cargo:rerun-if-changed={}", head.display());
    }
    println!("cargo:rerun-if-changed=tests/bed/versions.env");
    let commit = std::env::var("ZKSCALE_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        let dirty = Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .ok()
            .is_some_and(|o| !o.stdout.is_empty());
        out.status.success().then(|| {
            let c = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        })
    });
    println!(
        "cargo:rustc-env=ZKSCALE_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=ZKSCALE_BUILD_EPOCH={epoch}");
}

/// The HEAD file of the checkout being built, if there is one.
fn git_head() -> Option<std::path::PathBuf> {
    let dot_git = std::path::Path::new(".git");
    if dot_git.is_dir() {
        return Some(dot_git.join("HEAD"));
    }
    let text = std::fs::read_to_string(dot_git).ok()?;
    let dir = text.trim().strip_prefix("gitdir:")?.trim();
    let head = std::path::Path::new(dir).join("HEAD");
    head.is_file().then_some(head)
}
