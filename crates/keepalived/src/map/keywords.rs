//! Which keepalived.conf keywords the importer maps, which it drops (and why), and the
//! list of keywords of keepalived.conf(5) the coverage is counted against.

/// What the importer does with a keyword in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordStatus {
    /// Written to the cluster file (exactly, or approximated with a warning).
    Mapped,
    /// Dropped with a warning giving this reason.
    Dropped(&'static str),
    /// Not a keyword the importer knows: dropped with a warning.
    Unknown,
}

/// Keywords each block's mapping handles (in `map/*.rs`).
const MAPPED: &[(&str, &[&str])] = &[
    (
        "top",
        &[
            "global_defs",
            "vrrp_script",
            "vrrp_track_file",
            "vrrp_track_process",
            "vrrp_sync_group",
            "vrrp_instance",
            "virtual_server_group",
            "virtual_server",
            "include",
        ],
    ),
    (
        "global_defs",
        &[
            "router_id",
            "script_user",
            "vrrp_version",
            "vrrp_garp_master_repeat",
            "vrrp_garp_master_refresh",
            "vrrp_garp_interval",
            "vrrp_gna_interval",
            "lvs_sync_daemon",
        ],
    ),
    (
        "vrrp_script",
        &[
            "script",
            "interval",
            "timeout",
            "weight",
            "rise",
            "fall",
            "user",
            "init_fail",
        ],
    ),
    (
        "vrrp_sync_group",
        &["group", "track_interface", "track_script"],
    ),
    (
        "vrrp_instance",
        &[
            "state",
            "interface",
            "virtual_router_id",
            "priority",
            "advert_int",
            "version",
            "nopreempt",
            "preempt",
            "preempt_delay",
            "accept",
            "no_accept",
            "virtual_ipaddress",
            "virtual_ipaddress_excluded",
            "unicast_src_ip",
            "mcast_src_ip",
            "unicast_peer",
            "authentication",
            "garp_master_repeat",
            "garp_master_refresh",
            "garp_interval",
            "gna_interval",
            "track_interface",
            "track_script",
            "track_file",
            "track_process",
            "track_bfd",
            "dont_track_primary",
            "notify",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "notify_deleted",
            "notify_master_rx_lower_pri",
        ],
    ),
    ("authentication", &["auth_type", "auth_pass"]),
    (
        "virtual_server",
        &[
            "delay_loop",
            "lvs_sched",
            "lb_algo",
            "lvs_method",
            "lb_kind",
            "persistence_timeout",
            "persistence_granularity",
            "protocol",
            "virtualhost",
            "alpha",
            "quorum",
            "hysteresis",
            "ip_family",
            "sorry_server",
            "sorry_server_lvs_method",
            "retry",
            "delay_before_retry",
            "warmup",
            "connect_timeout",
            "inhibit_on_failure",
            "flag-1",
            "flag-2",
            "sh-port",
            "sh-fallback",
            "mh-port",
            "mh-fallback",
            "real_server",
        ],
    ),
    (
        "real_server",
        &[
            "weight",
            "lvs_method",
            "lb_kind",
            "uthreshold",
            "lthreshold",
            "virtualhost",
            "alpha",
            "retry",
            "delay_before_retry",
            "warmup",
            "delay_loop",
            "connect_timeout",
            "inhibit_on_failure",
            "TCP_CHECK",
            "HTTP_GET",
            "SSL_GET",
            "DNS_CHECK",
            "MISC_CHECK",
            "UDP_CHECK",
            "SMTP_CHECK",
            "FILE_CHECK",
            "BFD_CHECK",
            "PING_CHECK",
        ],
    ),
    (
        "checker",
        &[
            "connect_ip",
            "connect_port",
            "bindto",
            "bind_to",
            "connect_timeout",
            "alpha",
            "retry",
            "nb_get_retry",
            "delay_before_retry",
            "warmup",
            "delay_loop",
            "inhibit_on_failure",
            "virtualhost",
            "url",
            "http_protocol",
            "enable_sni",
            "fast_recovery",
            "tls_compliant",
            "type",
            "name",
            "misc_path",
            "misc_timeout",
            "misc_dynamic",
            "user",
            "payload",
            "require_reply",
            "helo_name",
        ],
    ),
    (
        "url",
        &["path", "status_code", "virtualhost", "digest", "regex"],
    ),
];

const NO_MAIL: &str = "vigil sends no mail; follow `vigilctl events` or the metrics instead";
const NO_SNMP: &str =
    "vigil has no SNMP or D-Bus interface; it exports Prometheus metrics (director.metrics_listen)";
const NO_TUNING: &str = "vigil has no process tuning options; use the systemd unit (Nice=, CPUSchedulingPolicy=, LimitRTTIME=...)";
const NO_FIFO: &str =
    "vigil writes no notify FIFO; follow `vigilctl events` or use a `notify` program";
const NO_STATIC: &str = "vigil configures no static addresses, routes or rules; leave them to the system's network configuration";

/// Keywords dropped on purpose, with the reason given in the warning.
const DROPPED: &[(&str, &str, &str)] = &[
    ("top", "static_ipaddress", NO_STATIC),
    ("top", "static_routes", NO_STATIC),
    ("top", "static_rules", NO_STATIC),
    ("top", "bfd_instance", "vigil has no BFD"),
    (
        "top",
        "garp_group",
        "vigil spaces gratuitous ARPs per instance (`garp_interval`), not per interface group",
    ),
    (
        "top",
        "SSL",
        "vigil's https checks present no client certificate; set `tls_ca_file` to verify servers",
    ),
    ("global_defs", "notification_email", NO_MAIL),
    ("global_defs", "notification_email_from", NO_MAIL),
    ("global_defs", "smtp_server", NO_MAIL),
    ("global_defs", "smtp_helo_name", NO_MAIL),
    ("global_defs", "smtp_connect_timeout", NO_MAIL),
    ("global_defs", "smtp_alert", NO_MAIL),
    ("global_defs", "smtp_alert_vrrp", NO_MAIL),
    ("global_defs", "smtp_alert_checker", NO_MAIL),
    ("global_defs", "no_email_faults", NO_MAIL),
    (
        "global_defs",
        "vrrp_mcast_group4",
        "vigil sends multicast adverts to 224.0.0.18 (RFC 5798); use `unicast_peers` for other destinations",
    ),
    (
        "global_defs",
        "vrrp_mcast_group6",
        "vigil sends multicast adverts to ff02::12 (RFC 5798); use `unicast_peers` for other destinations",
    ),
    (
        "global_defs",
        "default_interface",
        "it only serves static addresses, which vigil does not configure",
    ),
    (
        "global_defs",
        "lvs_flush",
        "vigil never flushes IPVS: it changes only the services it owns (see the state file)",
    ),
    (
        "global_defs",
        "lvs_flush_onstop",
        "vigil removes the services it owns when it stops and leaves the others",
    ),
    (
        "global_defs",
        "lvs_timeouts",
        "vigil leaves the IPVS connection timeouts to the system (ipvsadm --set)",
    ),
    (
        "global_defs",
        "vrrp_garp_master_delay",
        "vigil sends one burst of gratuitous ARPs / NAs on becoming master (use `garp_refresh` to repeat them)",
    ),
    (
        "global_defs",
        "vrrp_garp_master_refresh_repeat",
        "vigil sends one gratuitous ARP / NA per address at each refresh",
    ),
    (
        "global_defs",
        "vrrp_garp_lower_prio_delay",
        "vigil does not re-announce on receiving a lower-priority advert",
    ),
    (
        "global_defs",
        "vrrp_garp_lower_prio_repeat",
        "vigil does not re-announce on receiving a lower-priority advert",
    ),
    (
        "global_defs",
        "vrrp_lower_prio_no_advert",
        "vigil answers a lower-priority advert as RFC 5798 §6.4.3 says",
    ),
    (
        "global_defs",
        "vrrp_higher_prio_send_advert",
        "vigil steps down on a higher-priority advert as RFC 5798 §6.4.3 says",
    ),
    (
        "global_defs",
        "vrrp_iptables",
        "vigil installs no firewall rules (accept mode is not enforced)",
    ),
    (
        "global_defs",
        "vrrp_ipsets",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "vrrp_check_unicast_src",
        "vigil takes adverts from any source on the instance's interface",
    ),
    (
        "global_defs",
        "vrrp_skip_check_adv_addr",
        "vigil always compares the addresses of adverts",
    ),
    (
        "global_defs",
        "vrrp_strict",
        "vigil has no strict mode; it follows RFC 5798 / RFC 3768 and accepts unicast peers",
    ),
    ("global_defs", "vrrp_priority", NO_TUNING),
    ("global_defs", "checker_priority", NO_TUNING),
    ("global_defs", "bfd_priority", NO_TUNING),
    ("global_defs", "vrrp_no_swap", NO_TUNING),
    ("global_defs", "checker_no_swap", NO_TUNING),
    ("global_defs", "bfd_no_swap", NO_TUNING),
    ("global_defs", "vrrp_rt_priority", NO_TUNING),
    ("global_defs", "checker_rt_priority", NO_TUNING),
    ("global_defs", "bfd_rt_priority", NO_TUNING),
    ("global_defs", "vrrp_rlimit_rtime", NO_TUNING),
    ("global_defs", "checker_rlimit_rtime", NO_TUNING),
    ("global_defs", "bfd_rlimit_rtime", NO_TUNING),
    ("global_defs", "snmp_socket", NO_SNMP),
    ("global_defs", "enable_snmp_keepalived", NO_SNMP),
    ("global_defs", "enable_snmp_vrrp", NO_SNMP),
    ("global_defs", "enable_snmp_checker", NO_SNMP),
    ("global_defs", "enable_snmp_rfc", NO_SNMP),
    ("global_defs", "enable_snmp_rfcv2", NO_SNMP),
    ("global_defs", "enable_snmp_rfcv3", NO_SNMP),
    ("global_defs", "enable_traps", NO_SNMP),
    ("global_defs", "enable_dbus", NO_SNMP),
    ("global_defs", "dbus_service_name", NO_SNMP),
    (
        "global_defs",
        "enable_script_security",
        "vigil runs every program directly (no shell) as the user given; it checks no file permissions",
    ),
    ("global_defs", "notify_fifo", NO_FIFO),
    ("global_defs", "notify_fifo_script", NO_FIFO),
    ("global_defs", "vrrp_notify_fifo", NO_FIFO),
    ("global_defs", "vrrp_notify_fifo_script", NO_FIFO),
    ("global_defs", "lvs_notify_fifo", NO_FIFO),
    ("global_defs", "lvs_notify_fifo_script", NO_FIFO),
    (
        "global_defs",
        "dynamic_interfaces",
        "vigil does not require interfaces to exist when it starts",
    ),
    (
        "global_defs",
        "net_namespace",
        "run vigild in the namespace instead (systemd NetworkNamespacePath=)",
    ),
    (
        "global_defs",
        "namespace_with_ipsets",
        "vigil uses no ipsets",
    ),
    (
        "global_defs",
        "instance",
        "vigil's files are named by director.status_socket and director.state_file",
    ),
    ("global_defs", "use_pid_dir", "vigil writes no pid file"),
    (
        "global_defs",
        "linkbeat_use_polling",
        "vigil reads the link state from the kernel",
    ),
    (
        "global_defs",
        "child_wait_time",
        "vigil runs as one process",
    ),
    ("global_defs", "max_auto_priority", NO_TUNING),
    (
        "vrrp_sync_group",
        "track_file",
        "vigil cannot track a file's value",
    ),
    ("vrrp_sync_group", "track_bfd", "vigil has no BFD"),
    (
        "vrrp_sync_group",
        "notify_master",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    (
        "vrrp_sync_group",
        "notify_backup",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    (
        "vrrp_sync_group",
        "notify_fault",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    (
        "vrrp_sync_group",
        "notify_stop",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    (
        "vrrp_sync_group",
        "notify",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    ("vrrp_sync_group", "smtp_alert", NO_MAIL),
    (
        "vrrp_sync_group",
        "global_tracking",
        "the group's members share their tracking in vigil anyway (they fail over together)",
    ),
    (
        "vrrp_sync_group",
        "sync_group_tracking_weight",
        "each member's tracking weights apply to it",
    ),
    (
        "vrrp_instance",
        "use_vmac",
        "vigil uses the interface's own MAC address (no VRRP virtual MAC)",
    ),
    (
        "vrrp_instance",
        "vmac_xmit_base",
        "vigil uses no virtual MAC",
    ),
    (
        "vrrp_instance",
        "native_ipv6",
        "the addresses decide the family in vigil too",
    ),
    (
        "vrrp_instance",
        "track_src_ip",
        "vigil does not track the advert source address",
    ),
    (
        "vrrp_instance",
        "old_unicast_checksum",
        "vigil computes the RFC 5798 checksum only",
    ),
    (
        "vrrp_instance",
        "garp_master_delay",
        "vigil sends one burst of gratuitous ARPs / NAs on becoming master (use `garp_refresh` to repeat them)",
    ),
    (
        "vrrp_instance",
        "garp_master_refresh_repeat",
        "vigil sends one gratuitous ARP / NA per address at each refresh",
    ),
    (
        "vrrp_instance",
        "garp_lower_prio_delay",
        "vigil does not re-announce on receiving a lower-priority advert",
    ),
    (
        "vrrp_instance",
        "garp_lower_prio_repeat",
        "vigil does not re-announce on receiving a lower-priority advert",
    ),
    (
        "vrrp_instance",
        "lower_prio_no_advert",
        "vigil answers a lower-priority advert as RFC 5798 §6.4.3 says",
    ),
    (
        "vrrp_instance",
        "higher_prio_send_advert",
        "vigil steps down on a higher-priority advert as RFC 5798 §6.4.3 says",
    ),
    (
        "vrrp_instance",
        "promote_secondaries",
        "vigil leaves the interface's promote_secondaries setting to the system (sysctl)",
    ),
    (
        "vrrp_instance",
        "virtual_routes",
        "vigil adds no routes on failover; a notify program can",
    ),
    (
        "vrrp_instance",
        "virtual_rules",
        "vigil adds no routing rules on failover; a notify program can",
    ),
    (
        "vrrp_instance",
        "skip_check_adv_addr",
        "vigil always compares the addresses of adverts",
    ),
    (
        "vrrp_instance",
        "strict_mode",
        "vigil has no strict mode; it follows RFC 5798 / RFC 3768 and accepts unicast peers",
    ),
    ("vrrp_instance", "debug", "use vigild --log-level"),
    ("vrrp_instance", "smtp_alert", NO_MAIL),
    (
        "vrrp_instance",
        "unicast_fault_no_peer",
        "vigil runs a unicast instance without peers as it is",
    ),
    (
        "vrrp_instance",
        "kernel_rx_buf_size",
        "vigil sizes its advert socket itself",
    ),
    (
        "vrrp_instance",
        "linkbeat_use_polling",
        "vigil reads the link state from the kernel",
    ),
    (
        "virtual_server",
        "hashed",
        "it has no effect on IPVS services vigil creates",
    ),
    (
        "virtual_server",
        "flag-3",
        "vigil sets the sh/mh fallback and port flags only",
    ),
    (
        "virtual_server",
        "ops",
        "vigil has no one-packet scheduling",
    ),
    (
        "virtual_server",
        "persistence_engine",
        "vigil has no persistence engines (such as SIP)",
    ),
    (
        "virtual_server",
        "ha_suspend",
        "vigil checks real servers whether or not the director holds the address",
    ),
    ("virtual_server", "smtp_alert", NO_MAIL),
    (
        "virtual_server",
        "omega",
        "vigil runs no quorum or real-server programs, at shutdown or otherwise",
    ),
    (
        "virtual_server",
        "quorum_up",
        "vigil runs no program on quorum changes; `vigilctl events` reports them",
    ),
    (
        "virtual_server",
        "quorum_down",
        "vigil runs no program on quorum changes; `vigilctl events` reports them",
    ),
    (
        "virtual_server",
        "sorry_server_inhibit",
        "vigil removes the sorry server when quorum returns",
    ),
    (
        "real_server",
        "notify_up",
        "vigil runs no program on real-server changes; `vigilctl events` reports them",
    ),
    (
        "real_server",
        "notify_down",
        "vigil runs no program on real-server changes; `vigilctl events` reports them",
    ),
    ("real_server", "smtp_alert", NO_MAIL),
    (
        "checker",
        "bind_port",
        "vigil's probes use a source port the kernel chooses",
    ),
    (
        "checker",
        "bind_if",
        "vigil's probes are routed by the kernel (give `bind` an address instead)",
    ),
    ("checker", "fwmark", "vigil does not mark probe packets"),
    (
        "checker",
        "host",
        "vigil's approximation of SMTP_CHECK reads the greeting only",
    ),
    (
        "checker",
        "min_reply_length",
        "vigil matches a UDP reply by `expect` only",
    ),
    (
        "checker",
        "max_reply_length",
        "vigil matches a UDP reply by `expect` only",
    ),
    ("checker", "track_file", "vigil has no file checks"),
    (
        "checker",
        "regex_no_match",
        "vigil has no inverted body match",
    ),
    ("url", "regex_no_match", "vigil has no inverted body match"),
    (
        "url",
        "regex_options",
        "vigil's body_regex takes no options (use (?i) etc. in the expression)",
    ),
    (
        "url",
        "regex_stack",
        "vigil's regular expressions need no stack size",
    ),
    (
        "url",
        "regex_min_offset",
        "vigil matches the whole body it reads",
    ),
    (
        "url",
        "regex_max_offset",
        "vigil matches the whole body it reads (max_body_bytes)",
    ),
];

/// What the importer does with `keyword` in a block of kind `context`.
pub fn keyword_status(context: &str, keyword: &str) -> KeywordStatus {
    if MAPPED
        .iter()
        .any(|(c, kws)| *c == context && kws.contains(&keyword))
    {
        return KeywordStatus::Mapped;
    }
    // A block dropped as a whole: its keywords go with it.
    if matches!(
        context,
        "vrrp_track_file" | "vrrp_track_process" | "bfd_instance" | "garp_group" | "SSL" | "static"
    ) {
        return KeywordStatus::Dropped("its block is dropped");
    }
    DROPPED
        .iter()
        .find(|(c, k, _)| *c == context && *k == keyword)
        .map_or(KeywordStatus::Unknown, |(_, _, why)| {
            KeywordStatus::Dropped(why)
        })
}

/// The keywords of keepalived.conf(5) (keepalived 2.x), as `(block, keyword)`; checker
/// options are all under `checker`.
pub fn manpage_keywords() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for (ctx, kws) in MANPAGE {
        for k in kws.split_whitespace() {
            out.push((*ctx, k));
        }
    }
    out
}

const MANPAGE: &[(&str, &str)] = &[
    (
        "top",
        "include global_defs static_ipaddress static_routes static_rules vrrp_script vrrp_track_file vrrp_track_process bfd_instance vrrp_sync_group garp_group vrrp_instance virtual_server_group virtual_server SSL",
    ),
    (
        "global_defs",
        "notification_email notification_email_from smtp_server smtp_helo_name smtp_connect_timeout smtp_alert smtp_alert_vrrp smtp_alert_checker no_email_faults router_id vrrp_mcast_group4 vrrp_mcast_group6 default_interface lvs_sync_daemon lvs_flush vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat vrrp_garp_master_refresh vrrp_garp_master_refresh_repeat vrrp_garp_interval vrrp_gna_interval vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_strict vrrp_priority checker_priority bfd_priority vrrp_no_swap checker_no_swap bfd_no_swap vrrp_rt_priority checker_rt_priority bfd_rt_priority vrrp_rlimit_rtime checker_rlimit_rtime bfd_rlimit_rtime snmp_socket enable_snmp_keepalived enable_snmp_checker enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_traps enable_dbus dbus_service_name script_user enable_script_security notify_fifo notify_fifo_script vrrp_notify_fifo vrrp_notify_fifo_script lvs_notify_fifo lvs_notify_fifo_script dynamic_interfaces net_namespace namespace_with_ipsets instance use_pid_dir linkbeat_use_polling child_wait_time",
    ),
    (
        "vrrp_script",
        "script interval timeout weight rise fall user init_fail",
    ),
    ("vrrp_track_file", "file weight init_file"),
    (
        "vrrp_track_process",
        "process param_match weight quorum quorum_max delay terminate_delay fork_delay full_command",
    ),
    (
        "bfd_instance",
        "neighbor_ip source_ip min_rx min_tx idle_tx multiplier passive ttl hoplimit max_hops weight",
    ),
    (
        "vrrp_sync_group",
        "group track_interface track_script track_file track_bfd notify_master notify_backup notify_fault notify_stop notify smtp_alert global_tracking sync_group_tracking_weight",
    ),
    (
        "garp_group",
        "garp_interval gna_interval interface interfaces",
    ),
    (
        "vrrp_instance",
        "state interface use_vmac vmac_xmit_base native_ipv6 dont_track_primary track_interface track_script track_file track_process track_bfd mcast_src_ip unicast_src_ip track_src_ip version unicast_peer old_unicast_checksum garp_master_delay garp_master_repeat garp_lower_prio_delay garp_lower_prio_repeat garp_master_refresh garp_master_refresh_repeat garp_interval gna_interval lower_prio_no_advert higher_prio_send_advert virtual_router_id priority advert_int authentication virtual_ipaddress virtual_ipaddress_excluded promote_secondaries virtual_routes virtual_rules accept no_accept nopreempt preempt skip_check_adv_addr strict_mode preempt_delay debug notify_master notify_backup notify_fault notify_stop notify_deleted notify smtp_alert",
    ),
    ("authentication", "auth_type auth_pass"),
    (
        "virtual_server",
        "delay_loop lvs_sched hashed flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback ops lvs_method persistence_engine persistence_timeout persistence_granularity protocol ha_suspend lb_algo lb_kind smtp_alert virtualhost alpha omega quorum hysteresis quorum_up quorum_down ip_family sorry_server sorry_server_inhibit sorry_server_lvs_method retry delay_before_retry warmup connect_timeout inhibit_on_failure real_server",
    ),
    (
        "real_server",
        "weight lvs_method notify_up notify_down uthreshold lthreshold smtp_alert virtualhost alpha retry delay_before_retry warmup delay_loop inhibit_on_failure TCP_CHECK HTTP_GET SSL_GET SMTP_CHECK DNS_CHECK MISC_CHECK BFD_CHECK UDP_CHECK FILE_CHECK PING_CHECK",
    ),
    (
        "checker",
        "connect_ip connect_port bindto bind_if bind_port connect_timeout fwmark alpha retry delay_before_retry warmup delay_loop inhibit_on_failure url http_protocol enable_sni fast_recovery tls_compliant helo_name type name misc_path misc_timeout misc_dynamic user payload require_reply min_reply_length max_reply_length track_file",
    ),
    (
        "url",
        "path digest status_code virtualhost regex regex_no_match regex_options regex_stack regex_min_offset regex_max_offset",
    ),
    ("SSL", "password ca certificate key"),
];
