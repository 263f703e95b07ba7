//! How long one sandboxed child costs: `/bin/true` started, waited for and its tree
//! killed, one at a time and 8 at once, in fallback mode (subreaper). Prints figures;
//! `cargo bench -p vigil-child --bench spawn`.

use std::time::{Duration, Instant};

use vigil_child::{Command, Options};

fn main() {
    if let Err(e) = vigil_child::init(Options {
        own_all_children: true,
        use_cgroup: false,
    }) {
        eprintln!("cannot set up: {e}");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Command::new("/bin/true");
    c.timeout = Duration::from_secs(5);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0
        && let Ok(nobody) = vigil_child::lookup_user("nobody")
    {
        c.run_as = nobody;
    }
    let runs = 500;
    let mut lat: Vec<Duration> = Vec::with_capacity(runs);
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..runs {
            let t = Instant::now();
            let out = vigil_child::run(&c).await.expect("runs");
            assert!(out.success());
            lat.push(t.elapsed());
        }
    });
    let serial = start.elapsed();
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!(
        "one at a time: {runs} runs in {:.2} s ({:.0}/s), p50 {:?}, p99 {:?}",
        serial.as_secs_f64(),
        runs as f64 / serial.as_secs_f64(),
        pct(50),
        pct(99)
    );
    let start = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let c = c.clone();
            set.spawn(async move {
                for _ in 0..runs / 8 {
                    let _ = vigil_child::run(&c).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
    let parallel = start.elapsed();
    println!(
        "8 at once: {} runs in {:.2} s ({:.0}/s)",
        runs / 8 * 8,
        parallel.as_secs_f64(),
        (runs / 8 * 8) as f64 / parallel.as_secs_f64()
    );
}
