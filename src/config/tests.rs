//! The configuration's merge rules and checks.

use super::*;

#[test]
fn shutdown_grace_from_flag_or_file_else_30_s() {
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!(c.shutdown_grace.as_secs(), 30);
    let file = FileConfig::parse("shutdown_grace_s = 5\n").unwrap();
    assert_eq!(ServeConfig::merge(ServeArgs::default(), file).shutdown_grace.as_secs(), 5);
    let args = ServeArgs { shutdown_grace_s: Some(0), ..ServeArgs::default() };
    assert_eq!(ServeConfig::merge(args, FileConfig::default()).shutdown_grace.as_secs(), 0);
}

#[test]
fn defaults_apply_when_nothing_is_given() {
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!(c.http_addr.to_string(), DEFAULT_HTTP_ADDR);
    assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert!(c.api_key.is_none());
    assert_eq!(c.log_format, LogFormat::Text);
}

#[test]
fn flags_and_env_override_the_file() {
    let file = FileConfig::parse(
        "http_addr = \"0.0.0.0:9000\"\ndata_dir = \"/srv/t\"\napi_key = \"from-file\"\nlog_format = \"json\"\n",
    )
    .unwrap();
    let args = ServeArgs {
        http_addr: Some("127.0.0.1:7000".parse().unwrap()),
        api_key: Some("from-env".into()),
        ..ServeArgs::default()
    };
    let c = ServeConfig::merge(args, file);
    assert_eq!(c.http_addr.to_string(), "127.0.0.1:7000");
    assert_eq!(c.data_dir, PathBuf::from("/srv/t"));
    assert!(c.api_key.unwrap().matches("from-env"));
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn webrtc_ports_from_file_and_flags_and_zero_is_any() {
    let file = FileConfig::parse("rtc_udp_port = 7882\nrtc_tcp_port = 7881\n").unwrap();
    let args = ServeArgs { rtc_tcp_port: Some(0), ..ServeArgs::default() };
    let c = ServeConfig::merge(args, file);
    assert_eq!((c.rtc_udp_port, c.rtc_tcp_port), (Some(7882), None));
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!((c.rtc_udp_port, c.rtc_tcp_port), (None, None));
}

#[test]
fn empty_key_falls_through_to_the_file() {
    let file = FileConfig { api_key: Some("from-file".into()), ..FileConfig::default() };
    let args = ServeArgs { api_key: Some(String::new()), ..ServeArgs::default() };
    assert!(ServeConfig::merge(args, file).api_key.unwrap().matches("from-file"));
}

#[test]
fn storage_is_local_unless_a_bucket_is_named() {
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!(c.storage.s3_bucket, None);
    let file = FileConfig::parse("s3_bucket = \"rec\"\ns3_prefix = \"calls/\"\n").unwrap();
    let c = ServeConfig::merge(ServeArgs::default(), file);
    assert_eq!(c.storage.s3_bucket.as_deref(), Some("rec"));
    assert_eq!(c.storage.s3_prefix, "calls/");
    let args = ServeArgs { s3_bucket: Some(" ".into()), ..ServeArgs::default() };
    assert_eq!(ServeConfig::merge(args, FileConfig::default()).storage.s3_bucket, None);
}

#[test]
fn download_url_ttl_defaults_to_an_hour_and_is_bounded() {
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!(c.download_url_ttl.as_secs(), 3600);
    let file = FileConfig::parse("download_url_ttl_s = 600\n").unwrap();
    assert_eq!(ServeConfig::merge(ServeArgs::default(), file).download_url_ttl.as_secs(), 600);
    for bad in [0, 604_801] {
        let args = ServeArgs { download_url_ttl_s: Some(bad), ..ServeArgs::default() };
        let err = ServeConfig::resolve(args).unwrap_err();
        assert!(err.to_string().starts_with("download_url_ttl_s: "), "{err}");
    }
}

#[test]
fn turn_urls_and_secret_from_flags_or_file() {
    use clap::Parser;
    let none = turn_config(&ServeArgs::default(), &FileConfig::default()).unwrap();
    assert!(none.is_none());
    let file = FileConfig::parse(
        "turn_urls = [\"turn:turn.example.com:3478?transport=udp\", \"turns:turn.example.com:5349?transport=tcp\"]\nturn_secret = \"file-secret\"\nturn_ttl_s = 600\n",
    )
    .unwrap();
    let turn = turn_config(&ServeArgs::default(), &file).unwrap().expect("TURN from the file");
    assert_eq!(turn.urls, ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349?transport=tcp"]);
    assert_eq!(turn.ttl.as_secs(), 600);
    let (user, pass) = turn.credentials("ada", std::time::SystemTime::now());
    assert_eq!(pass, crate::turn::password("file-secret", &user));
    // Flags (or the environment) win; an empty secret falls through to the file's.
    let cli = crate::cli::Cli::try_parse_from([
        "tessera",
        "serve",
        "--turn-urls",
        "turn:127.0.0.1:3478, turn:127.0.0.1:3479?transport=tcp",
        "--turn-secret",
        "",
    ])
    .unwrap();
    let crate::cli::Command::Serve(args) = cli.command else { panic!("not serve") };
    let turn = turn_config(&args, &file).unwrap().unwrap();
    assert_eq!(turn.urls, ["turn:127.0.0.1:3478", "turn:127.0.0.1:3479?transport=tcp"]);
    assert_eq!(turn.ttl.as_secs(), 600);
    let (user, pass) = turn.credentials("ada", std::time::SystemTime::now());
    assert_eq!(pass, crate::turn::password("file-secret", &user));
    // The secret never shows in Debug, here or in the arguments.
    let shown = format!("{turn:?} {file:?} {args:?}");
    assert!(!shown.contains("file-secret"), "{shown}");
    // Without TURN, the default TTL is a day.
    let args = ServeArgs {
        turn_urls: Some(vec!["turn:h".into()]),
        turn_secret: Some(Secret::new("s")),
        ..ServeArgs::default()
    };
    assert_eq!(turn_config(&args, &FileConfig::default()).unwrap().unwrap().ttl.as_secs(), 86_400);
}

#[test]
fn bad_turn_settings_are_config_errors_naming_the_setting() {
    let err =
        |args: ServeArgs, file: &str| turn_config(&args, &FileConfig::parse(file).unwrap()).unwrap_err().to_string();
    let secret = || Some(Secret::new("s"));
    let e = err(
        ServeArgs {
            turn_urls: Some(vec!["http://turn.example.com".into()]),
            turn_secret: secret(),
            ..ServeArgs::default()
        },
        "",
    );
    assert!(e.starts_with("turn_urls: `http://turn.example.com` is not a TURN URL"), "{e}");
    let e = err(ServeArgs { turn_secret: secret(), ..ServeArgs::default() }, "turn_urls = [\"turn:h:99999\"]");
    assert!(e.starts_with("turn_urls: `turn:h:99999` is not a TURN URL"), "{e}");
    let e = err(ServeArgs::default(), "turn_urls = [\"turn:h\"]");
    assert!(e.starts_with("turn_urls: ") && e.contains("turn_secret"), "{e}");
    let e = err(ServeArgs { turn_secret: secret(), ..ServeArgs::default() }, "");
    assert!(e.starts_with("turn_secret: ") && e.contains("turn_urls"), "{e}");
    let e = err(ServeArgs { turn_urls: Some(vec![" ".into()]), ..ServeArgs::default() }, "turn_secret = \"s\"");
    assert!(e.starts_with("turn_secret: "), "{e}");
    for ttl in [59, 604_801] {
        let e = err(ServeArgs { turn_ttl_s: Some(ttl), ..ServeArgs::default() }, "");
        assert!(e.starts_with("turn_ttl_s: "), "{e}");
    }
    assert!(FileConfig::parse("turn_urls = \"turn:h\"").is_err(), "turn_urls is a list");
    // resolve() checks them too.
    let args = ServeArgs { turn_urls: Some(vec!["turn:h".into()]), ..ServeArgs::default() };
    assert!(ServeConfig::resolve(args).unwrap_err().to_string().starts_with("turn_urls: "));
}

#[test]
fn cluster_mode_needs_a_redis_url_and_checks_its_settings() {
    assert!(cluster_settings(&ServeArgs::default(), &FileConfig::default()).unwrap().is_none());
    let file =
        FileConfig::parse("redis_url = \"redis://:pw@127.0.0.1:6379/2\"\nnode_id = \"eu-1\"\nregion = \"eu-west\"\n")
            .unwrap();
    let args = ServeArgs { http_addr: Some("0.0.0.0:9000".parse().unwrap()), ..ServeArgs::default() };
    let c = cluster_settings(&args, &file).unwrap().expect("cluster mode");
    assert_eq!(c.node_id.as_deref(), Some("eu-1"));
    assert_eq!(c.region.as_deref(), Some("eu-west"));
    assert_eq!(c.public_url, "http://127.0.0.1:9000");
    assert_eq!(c.max_cpu, 0.85);
    assert!(!format!("{c:?} {file:?}").contains("pw@"), "the Redis password is not shown");
    let args = ServeArgs {
        public_url: Some("https://node1.example.com/".into()),
        rtc_ips: Some(vec!["10.0.0.5".parse().unwrap()]),
        ..ServeArgs::default()
    };
    assert_eq!(cluster_settings(&args, &file).unwrap().unwrap().public_url, "https://node1.example.com");
    let args = ServeArgs {
        http_addr: Some("0.0.0.0:9000".parse().unwrap()),
        rtc_ips: Some(vec!["10.0.0.5".parse().unwrap()]),
        ..ServeArgs::default()
    };
    assert_eq!(cluster_settings(&args, &file).unwrap().unwrap().public_url, "http://10.0.0.5:9000");
    let err = |args: ServeArgs, file: &str| {
        cluster_settings(&args, &FileConfig::parse(file).unwrap()).unwrap_err().to_string()
    };
    let redis = "redis_url = \"redis://127.0.0.1\"\n";
    assert!(err(ServeArgs::default(), "redis_url = \"http://x\"").starts_with("redis_url: "));
    assert!(err(ServeArgs { node_id: Some("a b".into()), ..ServeArgs::default() }, redis).starts_with("node_id: "));
    assert!(err(ServeArgs { region: Some("eu west".into()), ..ServeArgs::default() }, redis).starts_with("region: "));
    assert!(
        err(ServeArgs { public_url: Some("ftp://x".into()), ..ServeArgs::default() }, redis)
            .starts_with("public_url: ")
    );
    assert!(err(ServeArgs { max_cpu: Some(1.5), ..ServeArgs::default() }, redis).starts_with("max_cpu: "));
    let args = ServeArgs { program_budget: Some(0), ..ServeArgs::default() };
    assert!(ServeConfig::resolve(args).unwrap_err().to_string().starts_with("program_budget: "));
    assert!(default_program_budget() >= 1);
}

#[test]
fn unknown_file_keys_are_rejected() {
    let err = FileConfig::parse("http_adr = \"0.0.0.0:1\"").unwrap_err();
    assert!(err.to_string().contains("http_adr"), "{err}");
}

#[test]
fn forwarding_threads_and_delay_sampling_from_file_and_flags() {
    let c = ServeConfig::merge(ServeArgs::default(), FileConfig::default());
    assert_eq!((c.forwarding_threads, c.forward_delay_sample), (0, 16), "one per core, one copy in 16 timed");
    let file = FileConfig::parse("forwarding_threads = 2\nforward_delay_sample = 0\n").unwrap();
    let args = ServeArgs { forwarding_threads: Some(1), ..ServeArgs::default() };
    let c = ServeConfig::merge(args, file);
    assert_eq!((c.forwarding_threads, c.forward_delay_sample), (1, 0));
    let file = FileConfig::parse("forwarding_threads = 65\n").unwrap();
    let Err(ConfigError::Invalid { setting, .. }) = ServeConfig::resolve_with_file(ServeArgs::default(), file) else {
        panic!("65 threads accepted")
    };
    assert_eq!(setting, "forwarding_threads");
}
