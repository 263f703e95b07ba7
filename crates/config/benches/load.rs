//! What reading a large cluster file costs: time, bytes allocated and the most live at
//! once, for the director benchmark's 1,000 virtual servers x 10 real servers (issue 18:
//! a reload's heap is mostly this). Prints its figures; asserts nothing about them.
//!
//! `cargo bench -p vigil-config --bench load [-- --rounds N --vs N --per N --only WHAT]`
//!
//! Only the first measure's first round starts from a heap that never held a parse, so
//! its fresh pages are the cold figure; `--only toml|tree|parse` runs one measure alone
//! to get that figure for each.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Counts what the parse asks of the allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Relaxed);
        note_alloc(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    TOTAL.fetch_add(size, Relaxed);
    CALLS.fetch_add(1, Relaxed);
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn cluster(vs: usize, per: usize) -> String {
    let mut s =
        String::from("[director]\nname = \"bench\"\nstatus_socket = \"/run/vigil/bench.sock\"\n");
    for j in 0..vs {
        let _ = write!(
            s,
            "\n[[virtual_server]]\nname = \"vs{j}\"\naddress = \"10.201.{}.{}:80\"\nscheduler = \"wrr\"\n\
             forwarding = \"nat\"\ncheck = {{ kind = \"tcp\", interval = \"30s\", timeout = \"500ms\", \
             rise = 1, fall = 3 }}\nreal_server = [\n",
            j / 250,
            j % 250 + 1
        );
        for r in 0..per {
            let i = j * per + r;
            let _ = writeln!(
                s,
                "  {{ address = \"127.61.{}.{}:8080\" }},",
                i / 250,
                i % 250 + 1
            );
        }
        s.push_str("]\n");
    }
    s
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut vs, mut per) = (20usize, 1000usize, 10usize);
    let mut only = String::new();
    while let Some(a) = args.next() {
        let mut num = || args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match a.as_str() {
            "--rounds" => rounds = num().max(1),
            "--vs" => vs = num().max(1),
            "--per" => per = num().max(1),
            "--only" => only = args.next().unwrap_or_default(),
            // For a profiler: only the whole parse (the same as `--only parse`).
            "--no-tree" => only = "parse".into(),
            _ => {}
        }
    }
    let source = cluster(vs, per);
    let file = Path::new("bench.toml");
    let wanted = |what: &str| only.is_empty() || only == what;
    if wanted("toml") {
        measure("`toml`'s document tree alone", rounds, || {
            toml::de::DeTable::parse_recoverable(&source)
        });
    }
    if wanted("tree") {
        measure("vigil-config's TOML tree alone", rounds, || {
            vigil_config::toml_tree(&source)
        });
    }
    if wanted("parse") {
        measure("the whole parse", rounds, || {
            vigil_config::parse(file, &source)
                .unwrap_or_else(|d| panic!("the generated cluster is invalid:\n{d}"))
        });
    }
    println!(
        "({vs} virtual servers x {per} real servers, {:.2} MiB of TOML)",
        mib(source.len())
    );
}

/// Runs `work` `rounds` times and prints its time and what it asked of the allocator.
fn measure<T>(what: &str, rounds: usize, mut work: impl FnMut() -> T) {
    let mut times = Vec::new();
    let (mut total, mut peak, mut calls, mut kept) = (0, 0, 0, 0);
    let mut first_faults = 0;
    for round in 0..rounds {
        let faults_before = minor_faults();
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let (t0, c0) = (TOTAL.load(Relaxed), CALLS.load(Relaxed));
        let started = Instant::now();
        let kept_value = work();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if round == 0 {
            first_faults = minor_faults().saturating_sub(faults_before);
        }
        total = TOTAL.load(Relaxed) - t0;
        calls = CALLS.load(Relaxed) - c0;
        peak = PEAK.load(Relaxed) - base;
        kept = LIVE.load(Relaxed) - base;
        drop(kept_value);
    }
    let first = times[0];
    times.sort_by(f64::total_cmp);
    println!(
        "{what}: p50 {:.1} ms, min {:.1} ms over {rounds} rounds (the first {:.1} ms, \
         {first_faults} fresh pages faulted in); allocated {:.1} MiB in {calls} calls, at most \
         {:.1} MiB live, {:.1} MiB kept",
        times[times.len() / 2],
        times[0],
        first,
        mib(total),
        mib(peak),
        mib(kept),
    );
}

/// This process's minor page faults so far (`/proc/self/stat`, field 10).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}
