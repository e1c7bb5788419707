//! Bad input stops the binary before anything is sent: one clear line and exit 64.

use std::process::Command;

fn sim(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_device-sim"))
        .args(args)
        .env_remove("DEVICE_SIM_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DEVICE: &str = "HostName=unreachable.invalid;DeviceId=d1;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0";

#[test]
fn bad_input_exits_64_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_template = dir.path().join("bad.yaml");
    std::fs::write(&bad_template, "body: '{\"t\": {{ temperature }'\n").unwrap();
    let unknown_variable = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_variable, "body: '{\"t\": {{ temperatur }}}'\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--connection-string".into(),
                "HostName=x;DeviceId=;SharedAccessKey=abc".into(),
            ],
            "connection_string",
        ),
        (
            vec!["--connection-string".into(), "garbage".into()],
            "connection_string",
        ),
        (
            vec![
                "--connection-string".into(),
                DEVICE.into(),
                "--scenario".into(),
                bad_template.display().to_string(),
            ],
            "scenario",
        ),
        (
            vec![
                "--connection-string".into(),
                DEVICE.into(),
                "--scenario".into(),
                unknown_variable.display().to_string(),
            ],
            "temperatur",
        ),
        (
            vec![
                "--connection-string".into(),
                DEVICE.into(),
                "--interval".into(),
                "soon".into(),
            ],
            "soon",
        ),
        (vec![], "exactly one of"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["run".to_owned()];
        all.extend(args.clone());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let (code, stderr) = sim(&all);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: {stderr:?} should mention {expected:?}"
        );
        // One line saying what is wrong (clap adds its "For more information, try '--help'" hint).
        let lines: Vec<_> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("--help"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: one clear line: {stderr}");
        assert!(!stderr.contains("c2VjcmV0"), "no key in the message");
    }
}
