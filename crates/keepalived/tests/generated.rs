//! The importer's promise on inputs nobody wrote by hand: thousands of keepalived.conf
//! files generated from the keywords and a pool of good and bad values each either import
//! into a cluster file that vigil's own validation accepts, or fail with a `FILE:LINE:
//! error:`. Deterministic (a fixed xorshift sequence), so a failure reproduces; the failing
//! file is printed.

use std::path::Path;

use vigil_keepalived::{MemFiles, Options, import};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const IFACES: &[&str] = &["eth0", "eth1", "bond0"];
const V4: &[&str] = &[
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.10",
    "192.0.2.0",
    "192.0.2.255",
    "198.51.100.7",
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "224.0.0.5",
    "127.0.0.1",
];
const V6: &[&str] = &["2001:db8::1", "2001:db8::2", "2001:db8::", "fe80::1", "::1"];
const NUMS: &[&str] = &["1", "2", "3", "5", "10", "60", "100", "254", "0.5", "1.25"];
const BAD_NUMS: &[&str] = &["0", "255", "300", "-1", "x"];
const PORTS: &[&str] = &["80", "443", "53", "8080", "80", "443"];

/// Mostly good values, sometimes bad ones (which must give an error or a warning).
fn num(r: &mut Rng) -> &'static str {
    if r.chance(92) {
        r.pick(NUMS)
    } else {
        r.pick(BAD_NUMS)
    }
}

fn int(r: &mut Rng) -> &'static str {
    if r.chance(92) {
        r.pick(&["1", "2", "3", "10", "100"])
    } else {
        r.pick(BAD_NUMS)
    }
}

fn port(r: &mut Rng) -> &'static str {
    if r.chance(97) { r.pick(PORTS) } else { "70000" }
}

fn ip(r: &mut Rng) -> String {
    if r.chance(25) { r.pick(V6) } else { r.pick(V4) }.to_string()
}

fn maybe_len(r: &mut Rng, a: &str) -> String {
    match r.below(4) {
        0 => a.to_string(),
        1 => format!("{a}/24"),
        2 => format!("{a}/{}", if a.contains(':') { "64" } else { "32" }),
        _ => format!("{a}/{}", r.pick(&["8", "30", "31", "129"])),
    }
}

fn global_defs(r: &mut Rng, out: &mut String) {
    out.push_str("global_defs {\n");
    for _ in 0..r.below(6) {
        let line = match r.below(12) {
            0 => format!("router_id {}", r.pick(&["lb-a", "lb a", "x/y", "LB_1"])),
            1 => format!(
                "vrrp_version {}",
                if r.chance(95) {
                    r.pick(&["2", "3"])
                } else {
                    "4"
                }
            ),
            2 => format!("vrrp_garp_master_repeat {}", int(r)),
            3 => format!("vrrp_garp_master_refresh {}", num(r)),
            4 => format!("vrrp_garp_interval {}", num(r)),
            5 => format!("vrrp_gna_interval {}", num(r)),
            6 => format!("script_user {}", r.pick(&["root", "nobody", "ka ka"])),
            7 => format!(
                "lvs_sync_daemon {} {} {}",
                r.pick(IFACES),
                r.pick(&["VI_1", "VI_2", "nope"]),
                r.pick(&["", "id 5", "id 300", "maxlen 10", "port"])
            ),
            8 => "vrrp_strict".to_string(),
            9 => "notification_email {\n ops@example.org\n}".to_string(),
            10 => "enable_script_security".to_string(),
            _ => "unknown_thing 1".to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("}\n");
}

fn vrrp_script(r: &mut Rng, name: &str, out: &mut String) {
    out.push_str(&format!("vrrp_script {name} {{\n"));
    if r.chance(90) {
        out.push_str(&format!(
            "script \"{}\"\n",
            r.pick(&["/bin/true", "pidof haproxy", "/usr/bin/check 'a b'", ""])
        ));
    }
    for _ in 0..r.below(5) {
        let kw = r.pick(&["interval", "timeout", "weight", "rise", "fall"]);
        let v = if matches!(kw, "interval" | "timeout") {
            num(r)
        } else {
            int(r)
        };
        out.push_str(&format!("{kw} {v}\n"));
    }
    if r.chance(20) {
        out.push_str("user nobody\n");
    }
    out.push_str("}\n");
}

fn vrrp_instance(r: &mut Rng, name: &str, out: &mut String) {
    out.push_str(&format!("vrrp_instance {name} {{\n"));
    if r.chance(90) {
        out.push_str(&format!("interface {}\n", r.pick(IFACES)));
    }
    if r.chance(95) {
        out.push_str(&format!(
            "virtual_router_id {}\n",
            if r.chance(97) {
                r.pick(&["1", "2", "3", "51"])
            } else {
                r.pick(&["0", "256"])
            }
        ));
    }
    for _ in 0..r.below(10) {
        let line = match r.below(20) {
            0 => format!("priority {}", int(r)),
            1 => format!("advert_int {}", num(r)),
            2 => format!("version {}", r.pick(&["2", "3"])),
            3 => "nopreempt".to_string(),
            4 => format!("preempt_delay {}", num(r)),
            5 => r.pick(&["accept", "no_accept"]).to_string(),
            6 => format!("state {}", r.pick(&["MASTER", "BACKUP", "EQUAL"])),
            7 => format!("unicast_src_ip {}", ip(r)),
            8 => {
                let mut s = "unicast_peer {\n".to_string();
                for _ in 0..r.below(3) {
                    s.push_str(&format!("{}\n", ip(r)));
                }
                s.push('}');
                s
            }
            9 => format!(
                "authentication {{\nauth_type {}\nauth_pass {}\n}}",
                r.pick(&["PASS", "AH"]),
                r.pick(&["x", "longer-than-eight"])
            ),
            10 => format!("garp_master_repeat {}", int(r)),
            11 => format!("garp_master_refresh {}", num(r)),
            12 => {
                let mut s = "track_interface {\n".to_string();
                for _ in 0..r.below(3) {
                    s.push_str(&format!(
                        "{} weight {}\n",
                        r.pick(IFACES),
                        r.pick(&["-20", "0", "30", "254", "300"])
                    ));
                }
                s.push('}');
                s
            }
            13 => {
                let mut s = "track_script {\n".to_string();
                for _ in 0..r.below(3) {
                    s.push_str(r.pick(&["chk_a", "chk_b", "missing"]));
                    if r.chance(50) {
                        s.push_str(&format!(" weight {}", r.pick(&["-20", "0", "30", "253"])));
                    }
                    s.push('\n');
                }
                s.push('}');
                s
            }
            14 => format!("notify {}", r.pick(&["/bin/notify", "\"notify.sh a b\""])),
            15 => "notify_master /bin/m".to_string(),
            16 => "dont_track_primary".to_string(),
            17 => "virtual_ipaddress_excluded {\n2001:db8::9/64\n}".to_string(),
            18 => r
                .pick(&[
                    "use_vmac",
                    "unicast_ttl 64",
                    "unicast_ttl 255",
                    "unicast_ttl 0",
                ])
                .to_string(),
            _ => "virtual_routes {\n10.0.0.0/8 via 192.0.2.254\n}".to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    if r.chance(90) {
        out.push_str("virtual_ipaddress {\n");
        for _ in 0..r.below(4) {
            let a = ip(r);
            out.push_str(&maybe_len(r, &a));
            if r.chance(20) {
                out.push_str(&format!(" dev {}", r.pick(IFACES)));
            }
            if r.chance(10) {
                out.push_str(" label eth0:1 scope link");
            }
            out.push('\n');
        }
        out.push_str("}\n");
    }
    out.push_str("}\n");
}

fn checker(r: &mut Rng, out: &mut String) {
    let kind = r.pick(&[
        "TCP_CHECK",
        "HTTP_GET",
        "SSL_GET",
        "DNS_CHECK",
        "MISC_CHECK",
        "UDP_CHECK",
        "SMTP_CHECK",
        "PING_CHECK",
        "FILE_CHECK",
        "BFD_CHECK",
    ]);
    out.push_str(&format!("{kind} {{\n"));
    for _ in 0..r.below(6) {
        let line = match r.below(21) {
            14 => format!("bind_port {}", port(r)),
            15 => format!("bind_if {}", r.pick(&["eth1", "eth0:1", "bond0"])),
            16 => format!("fwmark {}", r.pick(&["1", "66", "0"])),
            17 => format!(
                "url {{\npath /\ndigest {}\n{}}}",
                r.pick(&[
                    "bfaa334fdd71444e45eca3b7a1679a4a",
                    "xyz",
                    "BFAA334FDD71444E45ECA3B7A1679A4A"
                ]),
                r.pick(&[
                    "",
                    "regex ok\n",
                    "regex_no_match\n",
                    "regex ok\nregex_no_match\n",
                    "virtualhost a.example\n"
                ])
            ),
            18 => format!("require_reply {}", r.pick(&["", "0a0b", "zz", "41 4"])),
            19 => format!("helo_name {}", r.pick(&["lb.example.org", "\"a b\""])),
            20 => r
                .pick(&[
                    "enable_sni",
                    "sni_name www.example.org",
                    "host {\nconnect_ip 10.0.0.9\n}",
                ])
                .to_string(),
            0 => format!("connect_timeout {}", num(r)),
            1 => format!("retry {}", int(r)),
            2 => format!("delay_before_retry {}", num(r)),
            3 => format!("delay_loop {}", num(r)),
            4 => format!("warmup {}", num(r)),
            5 => format!("connect_port {}", port(r)),
            6 => format!("connect_ip {}", ip(r)),
            7 => format!("bindto {}", ip(r)),
            8 => format!(
                "url {{\npath {}\nstatus_code {}\n}}",
                r.pick(&["/", "/healthz", "noslash", "/a b"]),
                r.pick(&["200", "200-299 404", "99", "abc"])
            ),
            9 => format!("misc_path \"{}\"", r.pick(&["/bin/check x", "check", ""])),
            10 => format!("type {}", r.pick(&["A", "AAAA", "PTR"])),
            11 => format!("name {}", r.pick(&["example.org", "bad name", "."])),
            12 => format!("payload {}", r.pick(&["70696e67", "zz", "ff"])),
            _ => "alpha".to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("}\n");
}

fn virtual_server(r: &mut Rng, out: &mut String) {
    let head = match r.below(4) {
        0 => format!("fwmark {}", r.pick(&["1", "2", "0"])),
        1 => "group grp".to_string(),
        _ => format!("{} {}", ip(r), port(r)),
    };
    out.push_str(&format!("virtual_server {head} {{\n"));
    for _ in 0..r.below(8) {
        let line = match r.below(16) {
            0 => format!("lb_algo {}", r.pick(&["rr", "wrr", "sh", "mh", "bogus"])),
            1 => format!(
                "lb_kind {}",
                if r.chance(97) {
                    r.pick(&["NAT", "DR", "TUN"])
                } else {
                    "XX"
                }
            ),
            2 => format!("protocol {}", r.pick(&["TCP", "UDP", "SCTP"])),
            3 => format!("persistence_timeout {}", r.pick(&["", "300", "0.5"])),
            4 => format!(
                "persistence_granularity {}",
                r.pick(&["255.255.255.0", "24", "64", "255.0.255.0"])
            ),
            5 => format!("quorum {}", int(r)),
            6 => format!("hysteresis {}", int(r)),
            7 => format!("sorry_server {} {}", ip(r), port(r)),
            8 => format!("delay_loop {}", num(r)),
            9 => r
                .pick(&["sh-port", "sh-fallback", "flag-1", "ops", "hashed"])
                .to_string(),
            10 => "inhibit_on_failure".to_string(),
            11 => format!("ip_family {}", r.pick(&["inet", "inet6"])),
            12 => format!("virtualhost {}", r.pick(&["www.example.org", "a b"])),
            13 => "alpha".to_string(),
            14 => format!("retry {}", int(r)),
            _ => "quorum_up /bin/up".to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for _ in 0..r.below(4) {
        let port = if r.chance(80) {
            port(r)
        } else {
            r.pick(&["", "0"])
        };
        out.push_str(&format!("real_server {} {port} {{\n", ip(r)));
        for _ in 0..r.below(4) {
            let line = match r.below(6) {
                0 => format!("weight {}", int(r)),
                1 => format!("lb_kind {}", r.pick(&["NAT", "DR", "TUN"])),
                2 => format!("uthreshold {}", int(r)),
                3 => format!("lthreshold {}", int(r)),
                4 => "inhibit_on_failure".to_string(),
                _ => "notify_up /bin/up".to_string(),
            };
            out.push_str(&line);
            out.push('\n');
        }
        for _ in 0..r.below(3) {
            checker(r, out);
        }
        out.push_str("}\n");
    }
    out.push_str("}\n");
}

fn config(r: &mut Rng) -> String {
    let mut out = String::new();
    if r.chance(80) {
        global_defs(r, &mut out);
    }
    if r.chance(20) {
        out.push_str(r.pick(&[
            "SSL {\nca /etc/ca.pem\ncertificate /etc/c.pem\nkey /etc/c.key\n}\n",
            "SSL {\ncertificate c.pem\npassword x\n}\n",
            "SSL {\nkey /etc/c.key\n}\n",
        ]));
    }
    for name in ["chk_a", "chk_b"] {
        if r.chance(50) {
            vrrp_script(r, name, &mut out);
        }
    }
    if r.chance(30) {
        let weighted = if r.chance(50) {
            "sync_group_tracking_weight\n"
        } else {
            ""
        };
        out.push_str(&format!(
            "vrrp_sync_group G {{\ngroup {{\nVI_1\nVI_2\n}}\ntrack_interface {{\neth1\n}}\n{weighted}}}\n"
        ));
    }
    if r.chance(30) {
        let member = r.pick(&[
            "192.0.2.20-22 80",
            "192.0.2.24/30 443",
            "192.0.2.30-192.0.2.31 8080",
            "192.0.2.40",
            "2001:db8::10-12 80",
        ]);
        out.push_str(&format!(
            "virtual_server_group grp {{\n{member}\nfwmark 9\n}}\n"
        ));
    }
    for name in ["VI_1", "VI_2", "VI_3"] {
        if r.chance(60) {
            vrrp_instance(r, name, &mut out);
        }
    }
    for _ in 0..r.below(3) {
        virtual_server(r, &mut out);
    }
    out
}

#[test]
fn generated_configs_import_validly_or_fail_with_an_error() {
    // GENERATED_CONFIGS=N runs more (the first 3000 are always the same).
    let count: usize = std::env::var("GENERATED_CONFIGS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..count {
        let text = config(&mut rng);
        let path = Path::new("/gen/keepalived.conf");
        let files = MemFiles::default().with("/gen/keepalived.conf", &text);
        match import(path, &files, &Options::default()) {
            Ok(out) => {
                ok += 1;
                if let Err(e) = vigil_config::parse(Path::new("gen.toml"), &out.toml) {
                    panic!(
                        "config {i} imported into an invalid cluster file:\n{e}\n--- input\n{text}\n--- output\n{}",
                        out.toml
                    );
                }
            }
            Err(e) => {
                refused += 1;
                if std::env::var_os("SHOW_REFUSED").is_some() {
                    println!("refused: {e}");
                }
                assert!(
                    e.to_string().starts_with("/gen/keepalived.conf:"),
                    "config {i}: error without FILE:LINE: {e}"
                );
            }
        }
    }
    println!("{count} generated configs: {ok} imported and valid, {refused} refused with an error");
    assert!(
        ok > 300,
        "too few generated configs import ({ok}): the generator needs tuning"
    );
}
