//! Drop-in hook folders: the user's (`hooks.d/EVENT/`) run for every
//! profile in lexical order around the profile's own hooks, unless it opts
//! out; the system's (`/etc/antimony/hooks.d/`) wrap the user's and cannot
//! be opted out of; files others may write are skipped with a warning.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = both_each(
        "hooks::dropins",
        &[(
            "user_dropins_run_in_lexical_order_around_the_profile",
            user_dropins,
        )],
    );
    t.push(case(
        "hooks::dropins::system_dropins_wrap_the_users_and_cannot_be_opted_out_of",
        system_dropins,
    ));
    t
}

/// A drop-in that logs its scope, event and name, and whether its JSON
/// input names the profile it runs for.
fn dropin(f: &Fixture, rel: &str, tag: &str) -> PathBuf {
    f.s.script(rel, &dropin_script(f, tag))
}

/// The text of [`dropin`]'s script, which logs into `f`'s `out` folder.
fn dropin_script(f: &Fixture, tag: &str) -> String {
    f.subst(&format!(
        "#!/bin/sh\ninput=$(cat)\ncase $input in *\"\\\"profile\\\":\\\"$ANTIMONY_NAME\\\"\"*) p=input-ok ;; *) p=input-bad ;; esac\necho \"{tag} $p\" >> @OUT@/log\n"
    ))
}

/// The profile's own hooks, which log `own-EVENT`.
fn own_hooks() -> Profile {
    Profile::on("sh").hooks([
        Hook::pre().logs("own-pre"),
        Hook::started().logs("own-started"),
        Hook::post().logs("own-post"),
    ])
}

/// The user opts out of their drop-ins.
fn opted_out(profile: Profile) -> Profile {
    profile.set("hooks", "user_dropins", false)
}

/// The user's drop-ins run for every profile in lexical order, pre (and
/// started) ones before the profile's hooks, post ones after, with the
/// run's JSON on stdin. Hidden files, backups and files that are not
/// executable are not hooks; a drop-in (or folder) others may write is
/// skipped with a warning. `user_dropins = false` opts out.
fn user_dropins(who: Who) -> TestResult {
    let f = fixture!(who);
    let d = "home/.config/antimony/hooks.d";
    dropin(&f, &format!("{d}/pre/20-b"), "user-pre-20-b");
    dropin(&f, &format!("{d}/pre/10-a"), "user-pre-10-a");
    dropin(&f, &format!("{d}/pre/.hidden"), "hidden");
    dropin(&f, &format!("{d}/pre/30-backup~"), "backup");
    let noexec = dropin(&f, &format!("{d}/pre/12-noexec"), "noexec");
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())?;
    let gw = dropin(&f, &format!("{d}/pre/15-group-writable"), "group-writable");
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o775))
        .map_err(|e| e.to_string())?;
    dropin(&f, &format!("{d}/started/10-s"), "user-started-10-s");
    dropin(&f, &format!("{d}/post/20-b"), "user-post-20-b");
    dropin(&f, &format!("{d}/post/10-a"), "user-post-10-a");
    dropin(&f, &format!("{d}/stopping/10-open"), "open-folder");
    std::fs::set_permissions(
        f.s.path(&format!("{d}/stopping")),
        std::fs::Permissions::from_mode(0o777),
    )
    .map_err(|e| e.to_string())?;
    f.profile("dropped", &own_hooks());
    f.profile("opted-out", &opted_out(own_hooks()));
    let program = format!("{}; echo program >> @OUT@/log", await_line("own-started"));
    let out = f.run("dropped", &program).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "user-pre-10-a input-ok",
        "user-pre-20-b input-ok",
        "own-pre",
        "user-started-10-s input-ok",
        "own-started",
        "program",
        "own-post",
        "user-post-10-a input-ok",
        "user-post-20-b input-ok",
    ];
    ensure!(log == want, "log: {log:?}");
    for (what, name) in [("file", "15-group-writable"), ("folder", "stopping")] {
        ensure!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("antimony: warning:")
                    && l.contains(name)
                    && l.contains("skipped")),
            "no warning for the {what} others may write: {}",
            out.show()
        );
    }
    f.clear();
    let out = f.run("opted-out", &program).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    let log = f.log();
    ensure!(
        log == ["own-pre", "own-started", "program", "own-post"],
        "user_dropins = false: {log:?}"
    );
    pass()
}

/// System drop-ins (`/etc/antimony/hooks.d/`) wrap the user's: system
/// pre-hooks first, system post-hooks last; `user_dropins = false` does not
/// turn them off; one not owned by root is skipped with a warning. The
/// same holds for antimony run by an ordinary user, the one who would want
/// to opt out (with the system's started and stopping drop-ins too).
///
/// So that no other test (running at the same time) sees them, the system
/// folder is this test's own: antimony runs in a mount namespace of its
/// own where the scratch's folder is bound over `/etc/antimony` (created
/// empty for the test if it did not exist, and removed afterwards); as the
/// user, `setpriv` drops to that user in that namespace.
fn system_dropins() -> TestResult {
    let f = fixture!(Who::Root);
    let Some(user) = world().user.clone() else {
        return skip("no unprivileged test user");
    };
    let etc = f.s.mkdir("etc-antimony");
    let d = "etc-antimony/hooks.d";
    dropin(&f, &format!("{d}/pre/60-b"), "system-pre-60-b");
    dropin(&f, &format!("{d}/pre/50-a"), "system-pre-50-a");
    dropin(&f, &format!("{d}/post/60-b"), "system-post-60-b");
    dropin(&f, &format!("{d}/post/50-a"), "system-post-50-a");
    let foreign = dropin(&f, &format!("{d}/pre/55-not-roots"), "not-roots");
    std::os::unix::fs::chown(&foreign, Some(user.uid), Some(user.gid))
        .map_err(|e| e.to_string())?;
    let u = "home/.config/antimony/hooks.d";
    dropin(&f, &format!("{u}/pre/10-a"), "user-pre-10-a");
    dropin(&f, &format!("{u}/post/10-a"), "user-post-10-a");
    f.profile("sysdrop", &own_hooks());
    f.profile("sysdrop-out", &opted_out(own_hooks()));
    let etc_held = EtcAntimony::hold()?;
    let run = |profile: &str| {
        antimony_with_bind(&f.s, &etc, "/etc/antimony", None)
            .args(["run", profile, "--rw", &s(&f.out), "--", "-c"])
            .arg(f.subst(&format!(
                "{}; echo program >> @OUT@/log",
                await_line("own-started")
            )))
            .run()
    };
    let out = run("sysdrop");
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "system-pre-50-a input-ok",
        "system-pre-60-b input-ok",
        "user-pre-10-a input-ok",
        "own-pre",
        "own-started",
        "program",
        "own-post",
        "user-post-10-a input-ok",
        "system-post-50-a input-ok",
        "system-post-60-b input-ok",
    ];
    ensure!(log == want, "log: {log:?}");
    ensure!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("antimony: warning:") && l.contains("55-not-roots")),
        "no warning for the drop-in root does not own: {}",
        out.show()
    );
    f.clear();
    let out = run("sysdrop-out");
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "system-pre-50-a input-ok",
        "system-pre-60-b input-ok",
        "own-pre",
        "own-started",
        "program",
        "own-post",
        "system-post-50-a input-ok",
        "system-post-60-b input-ok",
    ];
    ensure!(log == want, "user_dropins = false: {log:?}");

    // A reusable hook of the system's (/etc/antimony/hooks/), found like
    // a profile after the user's folder.
    f.s.write(
        "etc-antimony/hooks/sysdef.toml",
        &f.subst(
            "description = \"the system's\"\n[pre]\ncontent = 'echo sysdef-ran >> @OUT@/log'\n",
        ),
    );
    f.profile(
        "sysuse",
        &Profile::on("sh").hook(Hook::pre().uses("sysdef")),
    );
    f.clear();
    let out = antimony_with_bind(&f.s, &etc, "/etc/antimony", None)
        .args(["run", "sysuse", "--rw", &s(&f.out), "--", "-c", "true"])
        .run();
    ensure!(
        out.code() == Some(0) && f.log().iter().any(|l| l == "sysdef-ran"),
        "the system's reusable hook did not run: {:?} {}",
        f.log(),
        out.show()
    );

    // As the ordinary user: a home of the user's own, the same log (its
    // folder now the user's), the system's drop-ins as they are plus a
    // started and a stopping one. The run is stopped (SIGTERM) so that the
    // stopping hooks run.
    let us = scratch!(Who::User);
    std::os::unix::fs::chown(&f.out, Some(user.uid), Some(user.gid)).map_err(|e| e.to_string())?;
    dropin(&f, &format!("{d}/started/50-s"), "system-started-50-s");
    dropin(&f, &format!("{d}/stopping/50-s"), "system-stopping-50-s");
    for (event, tag) in [
        ("pre", "user-pre-10-a"),
        ("stopping", "user-stopping-10-a"),
        ("post", "user-post-10-a"),
    ] {
        us.script(
            &format!("home/.config/antimony/hooks.d/{event}/10-a"),
            &dropin_script(&f, tag),
        );
    }
    let stopping = || own_hooks().hook(Hook::stopping().logs("own-stopping"));
    us.profile("sysdrop", &f.subst(&stopping().to_string()));
    us.profile("sysdrop-out", &f.subst(&opted_out(stopping()).to_string()));
    let run_as_user = |profile: &str| -> Result<Output, String> {
        let run = antimony_with_bind(&f.s, &etc, "/etc/antimony", Some(&us))
            .args(["run", profile, "--rw", &s(&f.out), "--", "-c"])
            .arg(f.subst(&format!(
                "{}; echo program >> @OUT@/log; while :; do sleep 0.05; done",
                await_line("own-started")
            )));
        let mut bg = Background::start(run);
        wait_for_line(&f, "program")?;
        bg.signal(libc::SIGTERM);
        bg.finish()
    };
    for (profile, user_dropins) in [("sysdrop", true), ("sysdrop-out", false)] {
        f.clear();
        let out = run_as_user(profile)?;
        ensure!(
            out.code() == Some(128 + libc::SIGTERM),
            "as the user, {profile}: {}",
            out.show()
        );
        ensure!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("antimony: warning:") && l.contains("55-not-roots")),
            "as the user, {profile}: no warning for the drop-in root does not own: {}",
            out.show()
        );
        let mut want = vec![
            "system-pre-50-a input-ok",
            "system-pre-60-b input-ok",
            "user-pre-10-a input-ok",
            "own-pre",
            "system-started-50-s input-ok",
            "own-started",
            "program",
            "own-stopping",
            "user-stopping-10-a input-ok",
            "system-stopping-50-s input-ok",
            "own-post",
            "user-post-10-a input-ok",
            "system-post-50-a input-ok",
            "system-post-60-b input-ok",
        ];
        if !user_dropins {
            want.retain(|l| !l.starts_with("user-"));
        }
        let log = f.log();
        ensure!(log == want, "as the user, {profile}: log: {log:?}");
    }
    // It was the user's antimony: its run records are the user's.
    let runs = us.path("home/.local/state/antimony/runs");
    let owner = std::fs::metadata(&runs).map(|m| m.uid());
    ensure!(
        owner.as_ref().ok() == Some(&user.uid),
        "the user's run records {}: owner {owner:?}, not {}",
        runs.display(),
        user.uid
    );
    drop(etc_held);
    pass()
}
