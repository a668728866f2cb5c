//! e2e: installing like every other plugin. `make dist`'s artifacts (built here from the binary
//! under test) pass krew's own manifest validation, install with the real krew (v0.4.3, built
//! from its Go module) into a scratch KREW_ROOT and run as `kubectl zkscale` against the bed;
//! the signed Helm 4 plugin package installs with `helm plugin install` (signature verified)
//! and scales r1→r3 through `helm upgrade --post-renderer zkscale`; Helm 3.17 runs the binary
//! from the same archive.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::bed::{helm4_dir, Bed};
use support::chart::*;
use support::helm::{text, BIN};

fn cache() -> PathBuf {
    std::env::var_os("ZKSCALE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/zkscale"))
}

fn krew_dir() -> PathBuf {
    let pins = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/versions.env"),
    )
    .unwrap();
    let v = pins
        .lines()
        .find_map(|l| l.strip_prefix("KREW_VERSION="))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    cache().join(format!("krew-v{v}"))
}

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what}: {}", text(&out));
    out
}

/// A throwaway PGP key in `home`, exported the way Helm reads keyrings (legacy formats).
fn signing_key(home: &Path) -> (PathBuf, PathBuf) {
    let gpg = |args: &[&str]| {
        ok(
            Command::new("gpg")
                .env("GNUPGHOME", home)
                .args(["--batch", "--yes"])
                .args(args)
                .output()
                .unwrap(),
            "gpg",
        )
    };
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    gpg(&[
        "--passphrase",
        "",
        "--quick-gen-key",
        "zkscale test <test@zkscale.invalid>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let secring = home.join("secring.gpg");
    let pubring = home.join("pubring.gpg");
    std::fs::write(&secring, gpg(&["--export-secret-keys"]).stdout).unwrap();
    std::fs::write(&pubring, gpg(&["--export"]).stdout).unwrap();
    (secring, pubring)
}

#[tokio::test(flavor = "multi_thread")]
async fn e2e_dist_installs_with_krew_and_helm() {
    let Some(bed) = Bed::get() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let dist = scratch.path().join("dist");
    let gnupg = scratch.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    let (secring, pubring) = signing_key(&gnupg);
    ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/dist.sh"))
            .env("DIST_BINARY", BIN)
            .env("DIST_DIR", &dist)
            .env("HELM", helm4_dir().join("helm"))
            .env("DIST_SIGN_KEY", "zkscale test")
            .env("DIST_KEYRING", &secring)
            .output()
            .unwrap(),
        "packaging/dist.sh",
    );
    let files: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let find = |suffix: &str| {
        dist.join(
            files
                .iter()
                .find(|f| f.ends_with(suffix))
                .unwrap_or_else(|| panic!("no *{suffix} in {files:?}")),
        )
    };
    let archive = find(".tar.gz");
    let manifest = dist.join("zkscale.yaml");
    let package = find(".tgz");
    assert!(find(".tgz.prov").exists());
    // The checksum file and the manifest name the archive's real sha256.
    let sum = String::from_utf8(
        ok(
            Command::new("sha256sum").arg(&archive).output().unwrap(),
            "sha256sum",
        )
        .stdout,
    )
    .unwrap();
    let sum = sum.split_whitespace().next().unwrap();
    assert!(std::fs::read_to_string(find(".tar.gz.sha256"))
        .unwrap()
        .starts_with(sum));
    assert!(std::fs::read_to_string(&manifest)
        .unwrap()
        .contains(&format!("sha256: {sum}")));

    // krew's own validation of the manifest.
    ok(
        Command::new(krew_dir().join("validate-krew-manifest"))
            .args(["-manifest", manifest.to_str().unwrap(), "-skip-install"])
            .output()
            .unwrap(),
        "validate-krew-manifest",
    );
    // krew install from the manifest and the local archive, into a scratch KREW_ROOT.
    let krew_root = scratch.path().join("krew");
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        krew_root.join("bin").display(),
        helm4_dir().display()
    );
    ok(
        Command::new(krew_dir().join("krew"))
            .args([
                "install",
                "--manifest",
                manifest.to_str().unwrap(),
                "--archive",
                archive.to_str().unwrap(),
            ])
            .env("KREW_ROOT", &krew_root)
            .env("PATH", &path)
            .output()
            .unwrap(),
        "krew install",
    );
    let kubectl = |args: &[&str]| {
        Command::new(helm4_dir().join("kubectl"))
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &bed.kubeconfig)
            .env("KREW_ROOT", &krew_root)
            .output()
            .unwrap()
    };
    let v = ok(
        kubectl(&["zkscale", "version", "-o", "json"]),
        "kubectl zkscale version",
    );
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["tested_with"]["kubernetes"]
        .as_str()
        .unwrap()
        .starts_with("v1."));

    let zk = bed.ensemble("dist").members(1).znodes(200).up().await;
    let ns = zk.ns();
    let st = kubectl(&["zkscale", "-n", ns, "status"]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "kubectl zkscale status through krew's shim: {}",
        text(&st)
    );

    // Helm 4: the signed plugin package, verified against the public key.
    let helm_home = scratch.path().join("helm");
    let helm = |args: &[&str]| {
        Command::new(helm4_dir().join("helm"))
            .args(args)
            .env("HELM_DATA_HOME", helm_home.join("data"))
            .env("HELM_CONFIG_HOME", helm_home.join("config"))
            .env("HELM_CACHE_HOME", helm_home.join("cache"))
            .env("KUBECONFIG", &bed.kubeconfig)
            .env("ZKSCALE_LOG_FILE", scratch.path().join("post-render.log"))
            .env("PATH", "/usr/bin:/bin")
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap()
    };
    ok(
        helm(&[
            "plugin",
            "install",
            package.to_str().unwrap(),
            "--keyring",
            pubring.to_str().unwrap(),
        ]),
        "helm plugin install (verified)",
    );
    let chart = bed.chart("bitnami-zookeeper-13.7.4-replicas-3", ns);
    ok(
        helm(&[
            "upgrade",
            "zk",
            chart.to_str().unwrap(),
            "-n",
            ns,
            "--post-renderer",
            "zkscale",
        ]),
        "helm upgrade --post-renderer zkscale (the installed plugin)",
    );
    wait_healthy(&bed, ns, 3).await;
    assert_eq!(znodes_on_each_member(&bed, ns, 3).await, vec![200; 3]);
    // The unsigned archive installs too, when the user says so.
    ok(
        helm(&["plugin", "uninstall", "zkscale"]),
        "helm plugin uninstall",
    );
    let refused = helm(&["plugin", "install", archive.to_str().unwrap()]);
    assert!(
        !refused.status.success(),
        "an archive without .prov installed with verification on"
    );
    ok(
        helm(&[
            "plugin",
            "install",
            archive.to_str().unwrap(),
            "--verify=false",
        ]),
        "helm plugin install --verify=false",
    );

    // Helm 3.17: the binary from the same archive as its post-renderer (a preview here).
    let unpacked = scratch.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    ok(
        Command::new("tar")
            .args([
                "-xzf",
                archive.to_str().unwrap(),
                "-C",
                unpacked.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        "tar",
    );
    let helm3 = cache().join("helm3/helm");
    let out = ok(
        Command::new(helm3)
            .args([
                "template",
                "zk",
                chart.to_str().unwrap(),
                "-n",
                ns,
                "--post-renderer",
            ])
            .arg(
                unpacked
                    .join(
                        archive
                            .file_name()
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .trim_end_matches(".tar.gz"),
                    )
                    .join("kubectl-zkscale"),
            )
            .args(["--post-renderer-args", "post-render"])
            .env("KUBECONFIG", &bed.kubeconfig)
            .env("ZKSCALE_LOG_FILE", "-")
            .output()
            .unwrap(),
        "helm3 template with the archive's binary",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("replicas: 3"));
}
