//! Restart or reconfig: which way a run changes membership (`--method`), decided on what the
//! live ensemble says about itself. Pure: [`choose`] takes one look's facts.
//!
//! On an ensemble in quorum mode with `reconfigEnabled`, restarts cannot change membership (a
//! member restarting with a new static list adopts the committed configuration from its
//! peers), so `reconfig` is the only way there, and it needs an identity. A standalone member
//! cannot be reconfigured: 1→2 is a restart step whatever the method.

use serde::Serialize;

use crate::cluster::ReconfigEnv;
use crate::plan::{Method, Plan};
use crate::zk::session::{Committed, Permission, Reconfigurable};

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodChoice {
    /// New lists through restarts, followers first and the leader last.
    Restart,
    /// One `reconfig` per step, no restarts (1↔2 excepted: refused if a plan needs them).
    Reconfig,
    /// Reconfig where the ensemble has it enabled and an identity may use it, restart otherwise.
    #[default]
    Auto,
}

/// What one look found out about reconfiguration, from the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigLook {
    pub reconfigurable: Reconfigurable,
    /// The committed configuration, when reconfigurable.
    #[serde(skip)]
    pub committed: Option<Committed>,
    /// Whether the session may call `reconfig`.
    pub permission: Permission,
    /// Every serving member's ZooKeeper version is past ZOOKEEPER-3829 (3.5.9, 3.6.2, 3.7.0),
    /// or why not.
    pub versions: Result<(), String>,
}

/// Whether a ZooKeeper version (`srvr`'s "3.9.3-<build>, built on …") has rolling membership
/// changes fixed (ZOOKEEPER-3829: 3.5.9, 3.6.2, 3.7.0 and later).
pub fn past_3829(version: &str) -> bool {
    let nums: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    match nums.as_slice() {
        [3, 5, p] => *p >= 9,
        [3, 6, p] => *p >= 2,
        [3, m, _] => *m >= 7,
        [major, _, _] => *major > 3,
        _ => false,
    }
}

/// The facts [`choose`] decides on.
pub struct Facts<'a> {
    pub look: &'a ConfigLook,
    /// The StatefulSet's pod template (what new and restarted members run with).
    pub template: ReconfigEnv,
    /// `skipACL` on every running member.
    pub skip_acl: bool,
    pub size: u32,
    pub target: u32,
}

/// The method for a run, and why; `Err`: the run is refused (why, and what to do).
pub fn choose(choice: MethodChoice, f: &Facts) -> Result<(Method, String), String> {
    let moving = f.size != f.target;
    let allowed = || -> Result<String, String> {
        f.look.versions.clone().map_err(|v| format!("{v}; rolling membership changes need ZooKeeper 3.5.9, 3.6.2, 3.7.0 or later (ZOOKEEPER-3829)"))?;
        match &f.look.permission {
            Permission::Super => Ok("as the superuser".into()),
            Permission::Acl { user } => Ok(format!("as {user}, who may write /zookeeper/config")),
            Permission::No { .. } if f.skip_acl => Ok("anonymously: the members run with skipACL".into()),
            Permission::No { why } => Err(format!(
                "reconfig needs an identity ({why}): give --zk-auth-secret <Secret> (key `password`, \
                 optional `username`, default `super`) for the user the members' superDigest names \
                 (-Dzookeeper.DigestAuthenticationProvider.superDigest in JVMFLAGS), or run them with skipACL"
            )),
        }
    };
    match (f.look.reconfigurable, choice) {
        (Reconfigurable::Disabled, MethodChoice::Reconfig) => Err(
            "--method reconfig: the members run with reconfigEnabled=false; set ZOO_RECONFIG_ENABLED=yes \
             (the chart's extraEnvVars) and roll it out first, or use --method restart"
                .into(),
        ),
        (Reconfigurable::Disabled, _) => Ok((
            Method::Restart,
            "restart: the members run with reconfigEnabled=false".into(),
        )),
        (Reconfigurable::Standalone, c) => {
            // Beyond 2 members the steps are reconfig exactly when the template enables it.
            let dynamic_later = f.target > 2 && f.template.enabled != Some(false);
            match c {
                MethodChoice::Restart if dynamic_later && f.template.enabled == Some(true) => Err(
                    "--method restart: the pod template enables reconfiguration, so from 2 members on a \
                     restart cannot change membership; use --method auto"
                        .into(),
                ),
                MethodChoice::Restart => Ok((Method::Restart, "restart (--method restart)".into())),
                _ if f.template.enabled == Some(true) && f.target > 2 => {
                    let how = allowed()?;
                    Ok((
                        Method::Reconfig,
                        format!(
                            "1→2 restarts (a single member runs standalone, which ZooKeeper cannot reconfigure), \
                             then reconfig {how}"
                        ),
                    ))
                }
                MethodChoice::Reconfig if f.template.enabled != Some(true) => Err(
                    "--method reconfig: the pod template does not enable reconfiguration (ZOO_RECONFIG_ENABLED)"
                        .into(),
                ),
                MethodChoice::Reconfig => Err(
                    "--method reconfig: 1→2 is a restart step (a single member runs standalone, which \
                     ZooKeeper cannot reconfigure); use --method auto"
                        .into(),
                ),
                MethodChoice::Auto => Ok((
                    Method::Restart,
                    if f.target <= 2 {
                        "restart: a single member runs standalone, which ZooKeeper cannot reconfigure".into()
                    } else {
                        "restart: the pod template does not enable reconfiguration".into()
                    },
                )),
            }
        }
        (Reconfigurable::Yes, MethodChoice::Restart) if moving && !(f.size == 2 && f.target == 1) => {
            Err("--method restart: the members run with reconfigEnabled=true, so restarting them with a new \
                 list cannot change membership (each adopts the committed configuration); use --method \
                 reconfig or auto"
                .into())
        }
        (Reconfigurable::Yes, MethodChoice::Restart) => {
            Ok((Method::Restart, "restart (--method restart)".into()))
        }
        (Reconfigurable::Yes, _) if !moving || (f.size == 2 && f.target == 1) => Ok((
            Method::Reconfig,
            "reconfig: the members run with reconfigEnabled (this plan calls no reconfig)".into(),
        )),
        (Reconfigurable::Yes, _) => {
            let how = allowed()?;
            Ok((
                Method::Reconfig,
                format!("reconfig: the members run with reconfigEnabled; {how}"),
            ))
        }
    }
}

/// `status`'s line on membership changes: what the leader said, and who may reconfigure.
pub fn describe(choice: MethodChoice, look: &ConfigLook, template: &ReconfigEnv) -> String {
    let who = match &look.permission {
        Permission::Super => "this run may reconfigure as the superuser".to_string(),
        Permission::Acl { user } => format!("this run may reconfigure as {user}"),
        Permission::No { why } => format!("this run may not reconfigure ({why})"),
    };
    let what = match (look.reconfigurable, &look.committed) {
        (Reconfigurable::Disabled, _) => {
            "static configuration (reconfigEnabled=false): steps restart members".into()
        }
        (Reconfigurable::Standalone, _) if template.enabled == Some(true) => {
            "standalone; the template enables reconfiguration: 1→2 restarts, then reconfig".into()
        }
        (Reconfigurable::Standalone, _) => "standalone: steps restart members".into(),
        (Reconfigurable::Yes, Some(c)) => format!(
            "dynamic reconfiguration, committed `{}` (version {:#x}); {who}",
            c.servers.to_env().trim(),
            c.version
        ),
        (Reconfigurable::Yes, None) => format!("dynamic reconfiguration; {who}"),
    };
    match choice {
        MethodChoice::Auto => what,
        c => format!(
            "{what} (--method {})",
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
    }
}

/// `--method reconfig` promises no restart for membership: refuse a plan that needs one.
pub fn check_strict(choice: MethodChoice, plan: &Plan) -> Result<(), String> {
    if choice != MethodChoice::Reconfig {
        return Ok(());
    }
    match plan
        .steps
        .iter()
        .find(|s| s.method == Method::Restart && s.from != s.to)
    {
        Some(s) => Err(format!(
            "--method reconfig: step {}→{} restarts members (ZooKeeper keeps two voters at least and \
             cannot reconfigure a standalone server); use --method auto",
            s.from, s.to
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(r: Reconfigurable, p: Permission) -> ConfigLook {
        ConfigLook {
            reconfigurable: r,
            committed: None,
            permission: p,
            versions: Ok(()),
        }
    }

    fn facts(look: &ConfigLook, enabled: Option<bool>, size: u32, target: u32) -> Facts<'_> {
        Facts {
            look,
            template: ReconfigEnv {
                enabled,
                skip_acl: false,
            },
            skip_acl: false,
            size,
            target,
        }
    }

    fn no() -> Permission {
        Permission::No {
            why: "no identity given".into(),
        }
    }

    #[test]
    fn versions_past_zookeeper_3829() {
        for v in [
            "3.5.9",
            "3.6.2-abc",
            "3.7.0",
            "3.8.4-9c6b",
            "3.9.3-c26634f3",
            "4.0.0",
        ] {
            assert!(past_3829(v), "{v}");
        }
        for v in ["3.5.8", "3.6.1", "3.4.14", "", "x"] {
            assert!(!past_3829(v), "{v}");
        }
    }

    #[test]
    fn static_ensembles_restart() {
        let l = look(Reconfigurable::Disabled, no());
        let f = facts(&l, Some(false), 3, 5);
        assert_eq!(choose(MethodChoice::Auto, &f).unwrap().0, Method::Restart);
        assert_eq!(
            choose(MethodChoice::Restart, &f).unwrap().0,
            Method::Restart
        );
        assert!(choose(MethodChoice::Reconfig, &f)
            .unwrap_err()
            .contains("ZOO_RECONFIG_ENABLED"));
    }

    #[test]
    fn dynamic_ensembles_need_reconfig_and_an_identity() {
        let l = look(Reconfigurable::Yes, Permission::Super);
        let f = facts(&l, Some(true), 3, 5);
        assert_eq!(choose(MethodChoice::Auto, &f).unwrap().0, Method::Reconfig);
        assert_eq!(
            choose(MethodChoice::Reconfig, &f).unwrap().0,
            Method::Reconfig
        );
        assert!(choose(MethodChoice::Restart, &f)
            .unwrap_err()
            .contains("adopts the committed configuration"));
        // 2→1 and roll-outs call no reconfig: no identity needed.
        let l = look(Reconfigurable::Yes, no());
        assert!(choose(MethodChoice::Auto, &facts(&l, Some(true), 2, 1)).is_ok());
        assert!(choose(MethodChoice::Auto, &facts(&l, Some(true), 3, 3)).is_ok());
        assert!(choose(MethodChoice::Restart, &facts(&l, Some(true), 2, 1)).is_ok());
        let e = choose(MethodChoice::Auto, &facts(&l, Some(true), 3, 4)).unwrap_err();
        assert!(e.contains("--zk-auth-secret"), "{e}");
        // skipACL on the members stands in for an identity.
        let mut f = facts(&l, Some(true), 3, 4);
        f.skip_acl = true;
        assert!(choose(MethodChoice::Auto, &f)
            .unwrap()
            .1
            .contains("skipACL"));
        // An old version is refused.
        let mut l = look(Reconfigurable::Yes, Permission::Super);
        l.versions = Err("server 2 runs 3.5.8".into());
        assert!(choose(MethodChoice::Auto, &facts(&l, Some(true), 3, 4))
            .unwrap_err()
            .contains("ZOOKEEPER-3829"));
    }

    #[test]
    fn a_standalone_member_restarts_to_two_then_reconfigures() {
        let l = look(Reconfigurable::Standalone, Permission::Super);
        let (m, why) = choose(MethodChoice::Auto, &facts(&l, Some(true), 1, 5)).unwrap();
        assert_eq!(m, Method::Reconfig);
        assert!(why.starts_with("1→2 restarts"), "{why}");
        assert_eq!(
            choose(MethodChoice::Auto, &facts(&l, Some(false), 1, 5))
                .unwrap()
                .0,
            Method::Restart
        );
        assert_eq!(
            choose(MethodChoice::Auto, &facts(&l, Some(true), 1, 2))
                .unwrap()
                .0,
            Method::Restart
        );
        assert!(choose(MethodChoice::Restart, &facts(&l, Some(true), 1, 5)).is_err());
        assert!(choose(MethodChoice::Reconfig, &facts(&l, Some(true), 1, 2)).is_err());
        // Without an identity, auto would be stuck at 2 members: refused up front.
        let l = look(Reconfigurable::Standalone, no());
        assert!(choose(MethodChoice::Auto, &facts(&l, Some(true), 1, 3)).is_err());
    }
}
