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
            "track_file",
            "global_defs",
            "vrrp_script",
            "vrrp_track_file",
            "vrrp_track_process",
            "vrrp_sync_group",
            "vrrp_instance",
            "virtual_server_group",
            "virtual_server",
            "include",
            "SSL",
        ],
    ),
    (
        "global_defs",
        &[
            "lvs_timeouts",
            "vrrp_min_garp",
            "router_id",
            "script_user",
            "vrrp_version",
            "vrrp_garp_master_repeat",
            "vrrp_garp_master_refresh",
            "vrrp_garp_interval",
            "vrrp_gna_interval",
            "lvs_sync_daemon",
            "notify_fifo",
            "vrrp_notify_fifo",
            "lvs_notify_fifo",
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
        &[
            "sync_group_tracking_weight",
            "group",
            "track_interface",
            "track_script",
            "notify",
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "track_file",
            "track_process",
        ],
    ),
    ("track_file", &["file", "weight", "init_file"]),
    ("vrrp_track_file", &["file", "weight", "init_file"]),
    (
        "vrrp_track_process",
        &[
            "process",
            "param_match",
            "weight",
            "quorum",
            "quorum_max",
            "fork_delay",
            "terminate_delay",
            "delay",
            "full_command",
        ],
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
            "virtual_routes",
            "virtual_rules",
            "use_vmac",
            "vmac_xmit_base",
            "unicast_src_ip",
            "mcast_src_ip",
            "unicast_peer",
            "unicast_ttl",
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
            "ops",
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
            "omega",
            "quorum_up",
            "quorum_down",
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
            "notify_up",
            "notify_down",
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
            "sni_name",
            "enable_sni",
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
            "bind_port",
            "bind_if",
            "fwmark",
            "track_file",
            "dynamic",
            "weight",
        ],
    ),
    (
        "url",
        &[
            "path",
            "status_code",
            "virtualhost",
            "digest",
            "regex",
            "regex_no_match",
        ],
    ),
    ("SSL", &["ca", "certificate", "key"]),
];

const NO_MAIL: &str = "vigil sends no mail; follow `vigilctl events` or the metrics instead";
const NO_SNMP: &str =
    "vigil has no SNMP or D-Bus interface; it exports Prometheus metrics (director.metrics_listen)";
const NO_TUNING: &str = "vigil has no process tuning options; use the systemd unit (Nice=, CPUSchedulingPolicy=, LimitRTTIME=...)";
const NO_FIFO_SCRIPT: &str =
    "vigild starts no FIFO reader; run the script as a service of its own that reads the FIFO";
const NO_PRIORITY_LINES: &str = "vigil writes no priority-change lines to the notify FIFO; `vigilctl events` shows priority changes";
const NO_STARTUP: &str = "vigil starts its instances at once (a systemd ExecStartPre= or unit ordering can delay vigild)";
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
    ("global_defs", "notify_fifo_script", NO_FIFO_SCRIPT),
    ("global_defs", "vrrp_notify_fifo_script", NO_FIFO_SCRIPT),
    ("global_defs", "lvs_notify_fifo_script", NO_FIFO_SCRIPT),
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
    ("vrrp_sync_group", "track_bfd", "vigil has no BFD"),
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
        "sorry_server_inhibit",
        "vigil removes the sorry server when quorum returns",
    ),
    ("real_server", "smtp_alert", NO_MAIL),
    (
        "checker",
        "host",
        "keepalived's deprecated SMTP_CHECK host block is not mapped; give the real server another check",
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
    (
        "top",
        "linkbeat_interfaces",
        "vigil reads the link state from the kernel",
    ),
    (
        "top",
        "track_group",
        "vigil configures no static addresses, routes or rules to track",
    ),
    (
        "top",
        "interface_up_down_delays",
        "vigil reacts to link changes as the kernel reports them",
    ),
    (
        "top",
        "net_namespace",
        "run vigild in the namespace instead (systemd NetworkNamespacePath=)",
    ),
    (
        "top",
        "net_namespace_ipvs",
        "vigil programs IPVS in its own namespace",
    ),
    ("top", "namespace_with_ipsets", "vigil uses no ipsets"),
    (
        "top",
        "instance",
        "vigil's files are named by director.status_socket and director.state_file",
    ),
    ("top", "use_pid_dir", "vigil writes no pid file"),
    (
        "top",
        "linkbeat_use_polling",
        "vigil reads the link state from the kernel",
    ),
    ("top", "child_wait_time", "vigil runs as one process"),
    (
        "global_defs",
        "net_namespace_ipvs",
        "vigil programs IPVS in its own namespace",
    ),
    (
        "global_defs",
        "tmp_config_directory",
        "vigil reads its one cluster file directly",
    ),
    (
        "global_defs",
        "config_save_dir",
        "vigil keeps no copies of its configuration",
    ),
    (
        "global_defs",
        "process_names",
        "vigil runs as one process, vigild",
    ),
    (
        "global_defs",
        "process_name",
        "vigil runs as one process, vigild",
    ),
    (
        "global_defs",
        "vrrp_process_name",
        "vigil runs as one process, vigild",
    ),
    (
        "global_defs",
        "checker_process_name",
        "vigil runs as one process, vigild",
    ),
    (
        "global_defs",
        "bfd_process_name",
        "vigil runs as one process, vigild",
    ),
    (
        "global_defs",
        "use_symlink_paths",
        "vigil runs programs by the path given",
    ),
    (
        "global_defs",
        "set_supplementary_groups",
        "vigil sets the user's groups for programs it runs",
    ),
    (
        "global_defs",
        "startup_script",
        "vigil runs no program at start; use systemd ExecStartPre=",
    ),
    (
        "global_defs",
        "startup_script_timeout",
        "vigil runs no program at start; use systemd ExecStartPre=",
    ),
    (
        "global_defs",
        "shutdown_script",
        "vigil runs no program at stop; use systemd ExecStopPost=",
    ),
    (
        "global_defs",
        "shutdown_script_timeout",
        "vigil runs no program at stop; use systemd ExecStopPost=",
    ),
    (
        "global_defs",
        "checker_log_all_failures",
        "vigil logs state changes; `vigilctl events` follows them",
    ),
    (
        "global_defs",
        "lvs_flush_on_stop",
        "vigil removes the services it owns when it stops and leaves the others",
    ),
    (
        "global_defs",
        "vrrp_garp_extra_if",
        "vigil announces its addresses on the instance's interface only",
    ),
    (
        "global_defs",
        "vrrp_down_timer_adverts",
        "vigil uses RFC 5798's Master_Down_Interval (3 adverts plus skew)",
    ),
    (
        "global_defs",
        "v3_checksum_as_v2",
        "vigil computes the RFC 5798 checksum",
    ),
    (
        "global_defs",
        "nftables",
        "vigil installs no firewall rules (accept mode is not enforced)",
    ),
    (
        "global_defs",
        "nftables_priority",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "nftables_counters",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "nftables_ifindex",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "nftables_ipvs",
        "vigil installs no firewall rules (it has no virtual server groups to mark)",
    ),
    (
        "global_defs",
        "nftables_ipvs_priority",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "nftables_ipvs_start_fwmark",
        "vigil installs no firewall rules",
    ),
    (
        "global_defs",
        "disable_local_igmp",
        "vigil uses no VMAC interfaces, whose IGMP this concerns",
    ),
    (
        "global_defs",
        "vrrp_notify_priority_changes",
        NO_PRIORITY_LINES,
    ),
    (
        "global_defs",
        "min_auto_priority_delay",
        "process tuning belongs in the systemd unit",
    ),
    (
        "global_defs",
        "vrrp_cpu_affinity",
        "process tuning belongs in the systemd unit (CPUAffinity=)",
    ),
    (
        "global_defs",
        "checker_cpu_affinity",
        "process tuning belongs in the systemd unit (CPUAffinity=)",
    ),
    (
        "global_defs",
        "bfd_cpu_affinity",
        "process tuning belongs in the systemd unit (CPUAffinity=)",
    ),
    (
        "global_defs",
        "vrrp_rlimit_rttime",
        "process tuning belongs in the systemd unit (LimitRTTIME=)",
    ),
    (
        "global_defs",
        "checker_rlimit_rttime",
        "process tuning belongs in the systemd unit (LimitRTTIME=)",
    ),
    (
        "global_defs",
        "bfd_rlimit_rttime",
        "process tuning belongs in the systemd unit (LimitRTTIME=)",
    ),
    (
        "global_defs",
        "snmp_vs_stats_update_interval",
        "vigil has no SNMP; its metrics read the kernel's counters",
    ),
    (
        "global_defs",
        "snmp_rs_stats_update_interval",
        "vigil has no SNMP; its metrics read the kernel's counters",
    ),
    (
        "global_defs",
        "dbus_no_interface_name",
        "vigil has no D-Bus interface",
    ),
    (
        "global_defs",
        "fifo_write_vrrp_states_on_reload",
        "vigil writes no states to the notify FIFO on a reload, only changes",
    ),
    (
        "global_defs",
        "vrrp_netlink_cmd_rcv_bufs",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "vrrp_netlink_cmd_rcv_bufs_force",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "vrrp_netlink_monitor_rcv_bufs",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "vrrp_netlink_monitor_rcv_bufs_force",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "lvs_netlink_cmd_rcv_bufs",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "lvs_netlink_cmd_rcv_bufs_force",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "lvs_netlink_monitor_rcv_bufs",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "lvs_netlink_monitor_rcv_bufs_force",
        "vigil sizes its netlink sockets itself",
    ),
    (
        "global_defs",
        "process_monitor_rcv_bufs",
        "vigil does not monitor processes",
    ),
    (
        "global_defs",
        "process_monitor_rcv_bufs_force",
        "vigil does not monitor processes",
    ),
    (
        "global_defs",
        "vrrp_rx_bufs_policy",
        "vigil sizes its advert sockets itself",
    ),
    (
        "global_defs",
        "vrrp_rx_bufs_multiplier",
        "vigil sizes its advert sockets itself",
    ),
    (
        "global_defs",
        "rs_init_notifies",
        "vigil runs no real-server programs",
    ),
    ("global_defs", "no_checker_emails", "vigil sends no mail"),
    (
        "global_defs",
        "umask",
        "vigil creates its files with fixed modes (see docs/operations.md)",
    ),
    ("global_defs", "vrrp_startup_delay", NO_STARTUP),
    ("global_defs", "vrrp_delay_after_boot", NO_STARTUP),
    (
        "global_defs",
        "log_unknown_vrids",
        "vigil counts adverts it drops in its metrics",
    ),
    (
        "global_defs",
        "vmac_prefix",
        "vigil uses no virtual MAC interfaces",
    ),
    (
        "global_defs",
        "vmac_addr_prefix",
        "vigil uses no virtual MAC interfaces",
    ),
    (
        "global_defs",
        "random_seed",
        "the importer refuses ${_RANDOM}, so nothing is random",
    ),
    (
        "global_defs",
        "reload_check_config",
        "vigil validates a file before a reload and keeps the running one if it is invalid",
    ),
    (
        "global_defs",
        "include_check",
        "the importer makes a missing file an error and a pattern that matches nothing a warning (includew/includea: an error)",
    ),
    (
        "global_defs",
        "reload_time_file",
        "vigil reloads on `vigilctl reload` or SIGHUP",
    ),
    (
        "global_defs",
        "reload_repeat",
        "vigil reloads on `vigilctl reload` or SIGHUP",
    ),
    (
        "global_defs",
        "reload_file",
        "vigil reads the cluster file in one go",
    ),
    (
        "global_defs",
        "data_use_instance",
        "vigil's state is on its status socket (`vigilctl`)",
    ),
    (
        "global_defs",
        "state_file_location",
        "vigil's state is on its status socket (`vigilctl`)",
    ),
    (
        "global_defs",
        "stats_file_location",
        "vigil's counters are in its metrics",
    ),
    (
        "global_defs",
        "json_file_location",
        "vigil's state is on its status socket (`vigilctl --json`)",
    ),
    (
        "global_defs",
        "json_version",
        "vigil's state is on its status socket",
    ),
    (
        "global_defs",
        "iproute_usr_dir",
        "vigil does not read iproute2's files",
    ),
    (
        "global_defs",
        "iproute_etc_dir",
        "vigil does not read iproute2's files",
    ),
    (
        "vrrp_sync_group",
        "notify_deleted",
        "vigil runs `notify` per instance; set it on the member instances",
    ),
    (
        "vrrp_sync_group",
        "notify_priority_changes",
        NO_PRIORITY_LINES,
    ),
    (
        "vrrp_instance",
        "vrf",
        "vigil runs an instance on an interface (give `interface`)",
    ),
    (
        "vrrp_instance",
        "use_vmac_addr",
        "vigil uses no virtual MAC interfaces",
    ),
    (
        "vrrp_instance",
        "use_ipvlan",
        "vigil adds its addresses on the interface itself",
    ),
    (
        "vrrp_instance",
        "mcast_dst_ip",
        "vigil sends multicast adverts to the RFC groups; use `unicast_peers` for others",
    ),
    (
        "vrrp_instance",
        "check_unicast_src",
        "vigil takes adverts from any source on the instance's interface",
    ),
    (
        "vrrp_instance",
        "v3_checksum_as_v2",
        "vigil computes the RFC 5798 checksum",
    ),
    (
        "vrrp_instance",
        "garp_extra_if",
        "vigil announces its addresses on the instance's interface only",
    ),
    (
        "vrrp_instance",
        "down_timer_adverts",
        "vigil uses RFC 5798's Master_Down_Interval (3 adverts plus skew)",
    ),
    (
        "vrrp_instance",
        "timer_expired_backup",
        "vigil follows the RFC state machine",
    ),
    (
        "vrrp_instance",
        "auth_hmac",
        "vigil has no HMAC authentication of adverts",
    ),
    (
        "vrrp_instance",
        "no_virtual_ipaddress",
        "a vigil instance carries at least one address",
    ),
    (
        "vrrp_instance",
        "notify_priority_changes",
        NO_PRIORITY_LINES,
    ),
    (
        "virtual_server",
        "snmp_name",
        "vigil has no SNMP; the virtual server's `name` names it",
    ),
    ("real_server", "snmp_name", "vigil has no SNMP"),
    (
        "checker",
        "log_all_failures",
        "vigil logs state changes; `vigilctl events` follows them",
    ),
    (
        "SSL",
        "password",
        "vigil reads unencrypted private keys only (decrypt the key file)",
    ),
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
    if matches!(context, "bfd_instance" | "garp_group" | "static") {
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
        "include global_defs static_ipaddress static_routes static_rules vrrp_script vrrp_track_file vrrp_track_process bfd_instance vrrp_sync_group garp_group vrrp_instance virtual_server_group virtual_server SSL track_file linkbeat_interfaces track_group interface_up_down_delays net_namespace net_namespace_ipvs namespace_with_ipsets instance use_pid_dir linkbeat_use_polling child_wait_time",
    ),
    (
        "global_defs",
        "notification_email notification_email_from smtp_server smtp_helo_name smtp_connect_timeout smtp_alert smtp_alert_vrrp smtp_alert_checker no_email_faults router_id vrrp_mcast_group4 vrrp_mcast_group6 default_interface lvs_sync_daemon lvs_flush vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat vrrp_garp_master_refresh vrrp_garp_master_refresh_repeat vrrp_garp_interval vrrp_gna_interval vrrp_lower_prio_no_advert vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_strict vrrp_priority checker_priority bfd_priority vrrp_no_swap checker_no_swap bfd_no_swap vrrp_rt_priority checker_rt_priority bfd_rt_priority vrrp_rlimit_rtime checker_rlimit_rtime bfd_rlimit_rtime snmp_socket enable_snmp_keepalived enable_snmp_checker enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_traps enable_dbus dbus_service_name script_user enable_script_security notify_fifo notify_fifo_script vrrp_notify_fifo vrrp_notify_fifo_script lvs_notify_fifo lvs_notify_fifo_script dynamic_interfaces net_namespace namespace_with_ipsets instance use_pid_dir linkbeat_use_polling child_wait_time net_namespace_ipvs tmp_config_directory config_save_dir process_names process_name vrrp_process_name checker_process_name bfd_process_name use_symlink_paths set_supplementary_groups startup_script startup_script_timeout shutdown_script shutdown_script_timeout checker_log_all_failures lvs_timeouts lvs_flush_on_stop vrrp_min_garp vrrp_garp_extra_if vrrp_down_timer_adverts v3_checksum_as_v2 nftables nftables_priority nftables_counters nftables_ifindex nftables_ipvs nftables_ipvs_priority nftables_ipvs_start_fwmark disable_local_igmp vrrp_notify_priority_changes max_auto_priority min_auto_priority_delay vrrp_cpu_affinity checker_cpu_affinity bfd_cpu_affinity vrrp_rlimit_rttime checker_rlimit_rttime bfd_rlimit_rttime enable_snmp_vrrp snmp_vs_stats_update_interval snmp_rs_stats_update_interval dbus_no_interface_name fifo_write_vrrp_states_on_reload vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs vrrp_netlink_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs process_monitor_rcv_bufs_force vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier rs_init_notifies no_checker_emails umask vrrp_startup_delay vrrp_delay_after_boot log_unknown_vrids vmac_prefix vmac_addr_prefix random_seed reload_check_config include_check reload_time_file reload_repeat reload_file data_use_instance state_file_location stats_file_location json_file_location json_version iproute_usr_dir iproute_etc_dir",
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
        "neighbor_ip source_ip min_rx min_tx idle_tx multiplier passive ttl hoplimit max_hops weight neighbour_ip multihop vrrp checker",
    ),
    (
        "vrrp_sync_group",
        "group track_interface track_script track_file track_bfd notify_master notify_backup notify_fault notify_stop notify smtp_alert global_tracking sync_group_tracking_weight track_process notify_deleted notify_priority_changes",
    ),
    (
        "garp_group",
        "garp_interval gna_interval interface interfaces",
    ),
    (
        "vrrp_instance",
        "state interface use_vmac vmac_xmit_base native_ipv6 dont_track_primary track_interface track_script track_file track_process track_bfd mcast_src_ip unicast_src_ip track_src_ip version unicast_peer old_unicast_checksum garp_master_delay garp_master_repeat garp_lower_prio_delay garp_lower_prio_repeat garp_master_refresh garp_master_refresh_repeat garp_interval gna_interval lower_prio_no_advert higher_prio_send_advert virtual_router_id priority advert_int authentication virtual_ipaddress virtual_ipaddress_excluded promote_secondaries virtual_routes virtual_rules accept no_accept nopreempt preempt skip_check_adv_addr strict_mode preempt_delay debug notify_master notify_backup notify_fault notify_stop notify_deleted notify smtp_alert vrf use_vmac_addr use_ipvlan mcast_dst_ip check_unicast_src unicast_fault_no_peer unicast_ttl v3_checksum_as_v2 garp_extra_if down_timer_adverts timer_expired_backup auth_hmac no_virtual_ipaddress notify_master_rx_lower_pri notify_priority_changes kernel_rx_buf_size linkbeat_use_polling",
    ),
    ("authentication", "auth_type auth_pass"),
    (
        "virtual_server",
        "delay_loop lvs_sched hashed flag-1 flag-2 flag-3 sh-port sh-fallback mh-port mh-fallback ops lvs_method persistence_engine persistence_timeout persistence_granularity protocol ha_suspend lb_algo lb_kind smtp_alert virtualhost alpha omega quorum hysteresis quorum_up quorum_down ip_family sorry_server sorry_server_inhibit sorry_server_lvs_method retry delay_before_retry warmup connect_timeout inhibit_on_failure real_server snmp_name",
    ),
    (
        "real_server",
        "weight lvs_method notify_up notify_down uthreshold lthreshold smtp_alert virtualhost alpha retry delay_before_retry warmup delay_loop inhibit_on_failure TCP_CHECK HTTP_GET SSL_GET SMTP_CHECK DNS_CHECK MISC_CHECK BFD_CHECK UDP_CHECK FILE_CHECK PING_CHECK snmp_name connect_timeout",
    ),
    (
        "checker",
        "connect_ip connect_port bindto bind_if bind_port connect_timeout fwmark alpha retry delay_before_retry warmup delay_loop inhibit_on_failure url http_protocol enable_sni fast_recovery tls_compliant helo_name type name misc_path misc_timeout misc_dynamic user payload require_reply min_reply_length max_reply_length track_file log_all_failures sni_name dynamic weight",
    ),
    (
        "url",
        "path digest status_code virtualhost regex regex_no_match regex_options regex_stack regex_min_offset regex_max_offset",
    ),
    ("SSL", "password ca certificate key"),
];
