//! Build metadata for `kubectl zkscale version`: the commit (git, when building from a
//! checkout; `ZKSCALE_COMMIT` overrides, as release builds from an archive set it) and the build
//! date (`SOURCE_DATE_EPOCH` for reproducible builds, else now).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ZKSCALE_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=.git/HEAD");
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
