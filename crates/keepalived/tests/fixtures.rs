//! The fixture corpus: each `tests/fixtures/NAME.conf` is imported and compared with
//! `NAME.toml` (the cluster file) and `NAME.warnings` (stderr); every expected cluster file
//! must pass vigil's own validation. `tests/fixtures/bad/NAME.conf` must fail with the
//! error in `NAME.error`. `UPDATE_SNAPSHOTS=1 cargo test -p vigil-keepalived` rewrites the
//! expected files (review the diff).
//!
//! A fixture's first lines may carry `! options: config-id=ID hostname=NAME`.

use std::path::{Path, PathBuf};

use vigil_keepalived::{
    FsFiles, KeywordStatus, MemFiles, Options, import, keyword_status, manpage_keywords,
};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {dir}");
    out
}

fn options(text: &str) -> Options {
    let mut o = Options::default();
    for line in text.lines().take(3) {
        if let Some(rest) = line.strip_prefix("! options:") {
            for kv in rest.split_whitespace() {
                match kv.split_once('=') {
                    Some(("config-id", v)) => o.config_id = Some(v.to_string()),
                    Some(("hostname", v)) => o.hostname = Some(v.to_string()),
                    _ => panic!("unknown fixture option {kv}"),
                }
            }
        }
    }
    o
}

fn update() -> bool {
    std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1")
}

/// Compares with (or, when updating, writes) an expected file; returns a mismatch.
fn snapshot(path: &Path, actual: &str) -> Option<String> {
    if update() {
        std::fs::write(path, actual).expect("write snapshot");
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{} differs:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

#[test]
fn fixtures_import_as_expected() {
    let mut failures = Vec::new();
    for conf in fixtures("tests/fixtures") {
        let text = std::fs::read_to_string(&conf).expect("read fixture");
        let imported = match import(&conf, &FsFiles, &options(&text)) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: import failed: {e}", conf.display()));
                continue;
            }
        };
        let warnings: String = imported.warnings.iter().map(|w| format!("{w}\n")).collect();
        failures.extend(snapshot(&conf.with_extension("toml"), &imported.toml));
        failures.extend(snapshot(&conf.with_extension("warnings"), &warnings));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_expected_cluster_file_is_valid() {
    let mut failures = Vec::new();
    for conf in fixtures("tests/fixtures") {
        let toml = conf.with_extension("toml");
        let text = std::fs::read_to_string(&toml).expect("expected cluster file");
        if let Err(e) = vigil_config::parse(&toml, &text) {
            failures.push(format!("{}:\n{e}", toml.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn bad_inputs_fail_with_the_expected_error() {
    let mut failures = Vec::new();
    for conf in fixtures("tests/fixtures/bad") {
        let text = std::fs::read_to_string(&conf).expect("read fixture");
        let actual = match import(&conf, &FsFiles, &options(&text)) {
            Ok(_) => "imported without an error\n".to_string(),
            // The OS's wording of a missing file is not ours to pin.
            Err(e) => format!(
                "{}\n",
                e.to_string().split(": No such file").next().unwrap_or("")
            ),
        };
        failures.extend(snapshot(&conf.with_extension("error"), &actual));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// How much of keepalived.conf(5) the importer knows; printed, and no keyword of the
/// man page may be unknown.
#[test]
fn keyword_coverage() {
    let all = manpage_keywords();
    let mut mapped = 0;
    let mut dropped = 0;
    let mut unknown = Vec::new();
    for (ctx, kw) in &all {
        match keyword_status(ctx, kw) {
            KeywordStatus::Mapped => mapped += 1,
            KeywordStatus::Dropped(_) => dropped += 1,
            KeywordStatus::Unknown => unknown.push(format!("{ctx} {kw}")),
        }
    }
    println!(
        "keepalived.conf(5) keywords: {} — {mapped} mapped, {dropped} dropped with a reason, {} unknown",
        all.len(),
        unknown.len()
    );
    assert!(unknown.is_empty(), "unknown keywords: {unknown:?}");
}

/// docs/migrating-from-keepalived.md names every keyword of the man page (the keywords of
/// blocks dropped as a whole go with their block).
#[test]
fn the_migration_guide_names_every_keyword() {
    let guide = std::fs::read_to_string("../../docs/migrating-from-keepalived.md")
        .expect("docs/migrating-from-keepalived.md");
    let whole_blocks = [
        "vrrp_track_file",
        "vrrp_track_process",
        "bfd_instance",
        "garp_group",
    ];
    let missing: Vec<String> = manpage_keywords()
        .into_iter()
        .filter(|(ctx, _)| !whole_blocks.contains(ctx))
        .filter(|(_, kw)| {
            !guide.contains(&format!("`{kw}`")) && !guide.contains(&format!("`{kw} "))
        })
        .map(|(ctx, kw)| format!("{ctx} {kw}"))
        .collect();
    assert!(missing.is_empty(), "not in the guide: {missing:?}");
}

/// Whatever a fixture loses, the importer either reads it or says why not: with every
/// single line of every fixture removed in turn, an import that succeeds still writes a
/// valid cluster file, and none panics.
#[test]
fn any_fixture_minus_one_line_imports_validly_or_fails_cleanly() {
    let mut failures = Vec::new();
    let mut imported = 0;
    for conf in fixtures("tests/fixtures") {
        let text = std::fs::read_to_string(&conf).expect("read fixture");
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let cut: String = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            let path = conf.with_file_name("cut.conf");
            let files = MemFiles::default().with(&path.display().to_string(), &cut);
            let Ok(out) = import(&path, &files, &options(&text)) else {
                continue;
            };
            imported += 1;
            if let Err(e) = vigil_config::parse(Path::new("cut.toml"), &out.toml) {
                failures.push(format!(
                    "{} without line {}:\n{e}\n{}",
                    conf.display(),
                    skip + 1,
                    out.toml
                ));
            }
        }
    }
    println!("{imported} variants imported and valid");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A track_file block's `init_file` is warned about once, where the block is read, however
/// many VRRP instances and FILE_CHECKs use the block.
#[test]
fn init_file_is_warned_once_per_track_file_block() {
    let conf = "\
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_file {
        up
    }
}

virtual_server 192.0.2.100 80 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 192.0.2.11 80 {
        FILE_CHECK {
            track_file up
        }
    }
    real_server 192.0.2.12 80 {
        FILE_CHECK {
            track_file up
            weight 2
        }
    }
}

track_file up {
    file /run/up
    init_file 1
}
";
    let path = Path::new("init.conf");
    let files = MemFiles::default().with("init.conf", conf);
    let out = import(path, &files, &Options::default()).expect("import");
    let init: Vec<String> = out
        .warnings
        .iter()
        .filter(|w| w.keyword == "init_file")
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        init,
        [
            "init.conf:33: warning: init_file: dropped: vigil does not create or write the tracked file; create it (a missing file reads 0)"
        ]
    );
    // The file is still tracked by both.
    assert!(out.toml.contains("kind = \"file\""), "{}", out.toml);
    assert!(out.toml.contains("/run/up"), "{}", out.toml);
}
