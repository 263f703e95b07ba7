//! Render and apply cost of the nftables datapath on this kernel, in a network namespace
//! of its own: a table of SERVICES x REALS (default 10,000 x 10), then a change of one
//! real server on it (through `Applier::apply` and `Applier::apply_service`). Prints
//! figures; asserts only that each step did what it should.
//!
//! `cargo bench -p vigil-nft --bench apply [-- SERVICES REALS REPS]` (root; see
//! docs/benchmarks.md).

#![allow(clippy::unwrap_used)] // a benchmark: it panics on what it set up itself

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
use vigil_ipvs::{Destination, DestinationKey, ForwardMethod, Service, ServiceKey};
use vigil_nft::{Applier, Nft, Options, parse, plan, render};
use vigil_testlab::NetnsLab;

fn table(services: u32, reals: u32) -> DesiredTable {
    let mut t = DesiredTable::new();
    for s in 0..services {
        let vip = Ipv4Addr::from(0x0a01_0000 + s);
        let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(vip), 80));
        let mut d = DesiredService::new(Service::new(key, "wrr"));
        for r in 0..reals {
            let ip = Ipv4Addr::from(0x0a80_0000 + s * reals + r);
            d = d.with(
                Destination::new(
                    SocketAddr::new(IpAddr::V4(ip), 8080),
                    ForwardMethod::Masquerade,
                )
                .weight(1 + r % 10),
            );
        }
        t.insert(key, d);
    }
    t
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// CPU time of this process and its waited-for children (nft) so far: wall time on a
/// shared, loaded machine says little, CPU time says what the work costs.
fn cpu() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        for tv in [ru.ru_utime, ru.ru_stime] {
            total += Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
        }
    }
    total
}

/// min / median / max wall time of `reps` runs of `f`, and the median CPU time.
fn measure(reps: usize, mut f: impl FnMut()) -> String {
    let mut v: Vec<(Duration, Duration)> = (0..reps)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu());
            f();
            (t.elapsed(), cpu().saturating_sub(c))
        })
        .collect();
    let mut c: Vec<Duration> = v.iter().map(|x| x.1).collect();
    c.sort();
    v.sort();
    format!(
        "wall {} / {} / {}, CPU {}",
        ms(v[0].0),
        ms(v[v.len() / 2].0),
        ms(v[v.len() - 1].0),
        ms(c[c.len() / 2])
    )
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, d: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (services, reals, reps) = (num(0, 10_000), num(1, 10), num(2, 5) as usize);
    if let Err(why) = NetnsLab::available() {
        println!("SKIPPED: nft apply bench: {why}");
        return;
    }
    let lab = NetnsLab::up(&["director"]).unwrap();
    let nft = || {
        Nft::with_command([
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            lab.netns_name("director"),
            "nft".into(),
        ])
        .timeout(Duration::from_secs(600))
    };
    let opts = Options::default();
    let t = table(services, reals);
    println!(
        "nftables datapath: {services} services x {reals} real servers, {reps} runs (CPU: this process + nft, median)"
    );

    let mut bytes = 0;
    let r = measure(reps, || {
        bytes = render(&t, &opts).unwrap().to_string().len()
    });
    println!(
        "  render whole table to JSON text ({:.1} MiB): {r}",
        bytes as f64 / 1048576.0
    );

    let r = measure(reps, || {
        let mut a = Applier::new(nft(), opts.clone());
        a.remove().unwrap();
        let rep = a.apply(&t).unwrap();
        assert!(rep.written && rep.full);
    });
    println!("  create the table (nft -j -f -, one transaction): {r}");

    let mut listing = None;
    let r = measure(reps, || listing = nft().list().unwrap());
    println!("  read back (nft -j list table inet vigil): {r}");
    let listing = listing.unwrap();
    let r = measure(reps, || {
        let c = parse(&listing);
        assert!(c.intact() && c.model.services.len() == services as usize);
    });
    println!("  parse the read-back: {r}");

    let r = measure(reps, || {
        let rep = Applier::new(nft(), opts.clone()).apply(&t).unwrap();
        assert!(!rep.written);
    });
    println!("  restart, unchanged (read back + plan + diff, no write): {r}");

    // One real server fails: one service's rule is replaced.
    let mut a = Applier::new(nft(), opts.clone());
    a.apply(&t).unwrap();
    let key = *t.keys().nth(services as usize / 2).unwrap();
    let mut toggled = t.clone();
    let victim = *toggled[&key].destinations.keys().next().unwrap();
    toggled.get_mut(&key).unwrap().destinations.remove(&victim);
    let mut flip = false;
    let r = measure(reps, || {
        flip = !flip;
        let rep = a.apply(if flip { &toggled } else { &t }).unwrap();
        assert!(rep.written && !rep.full && rep.services_changed == 1);
    });
    println!("  one real server removed / restored (warm applier, one transaction): {r}");
    let r = measure(reps, || {
        flip = !flip;
        let d = if flip { &toggled[&key] } else { &t[&key] };
        let rep = a.apply_service(key, Some(d)).unwrap();
        assert!(rep.written && !rep.full && rep.services_changed == 1);
    });
    println!("  the same through apply_service (one service planned and diffed): {r}");
    let r = measure(reps, || {
        let cur = a.read_back().unwrap().unwrap();
        let want = plan(&t, Some(&cur.model), &opts).unwrap();
        let _ = vigil_nft::diff(&want, Some(&cur));
    });
    println!("  of which a read-back + plan + diff would cost: {r}");
    let _ = DestinationKey(victim.0);
    Applier::new(nft(), opts).remove().unwrap();
}
