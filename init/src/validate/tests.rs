use super::*;
use crate::config::{Args, Invocation};
use clap::Parser as _;

fn config(line: &[&str]) -> CaptureConfig {
    let args =
        Args::try_parse_from(std::iter::once("sluice-init").chain(line.iter().copied())).unwrap();
    Invocation::from_args(&args, |_| true).unwrap().config
}

#[test]
fn the_test_destination_is_one_the_rules_capture() {
    let cases: &[(&[&str], Family, Option<&str>)] = &[
        (&[], Family::V4, Some("192.0.2.1:80")),
        (&[], Family::V6, Some("[2001:db8::1]:80")),
        (
            &["--exclude-outbound-cidrs", "192.0.2.0/24"],
            Family::V4,
            Some("198.51.100.1:80"),
        ),
        (
            &["--exclude-outbound-ports", "80,443"],
            Family::V4,
            Some("192.0.2.1:8080"),
        ),
        (
            &[
                "--include-outbound-ports",
                "9000,9001",
                "--exclude-outbound-ports",
                "9000",
            ],
            Family::V4,
            Some("192.0.2.1:9001"),
        ),
        (
            &["--outbound-cidrs", "10.96.0.0/12"],
            Family::V4,
            Some("10.96.0.1:80"),
        ),
        (
            &["--outbound-cidrs", "10.96.0.7"],
            Family::V4,
            Some("10.96.0.7:80"),
        ),
        (
            &["--outbound-cidrs", "fd00::/108"],
            Family::V6,
            Some("[fd00::1]:80"),
        ),
        (&["--outbound-cidrs", "10.96.0.0/12"], Family::V6, None),
        (&["--outbound-cidrs", ""], Family::V4, None),
        (
            &[
                "--outbound-cidrs",
                "10.0.0.0/8",
                "--exclude-outbound-cidrs",
                "10.0.0.0/8",
            ],
            Family::V4,
            None,
        ),
        (
            &[
                "--include-outbound-ports",
                "25",
                "--exclude-outbound-ports",
                "25",
            ],
            Family::V4,
            None,
        ),
    ];
    for (line, family, expected) in cases {
        let got = test_destination(&config(line), *family);
        let expected = expected.map(|s| s.parse::<SocketAddr>().unwrap());
        assert_eq!(got, expected, "{line:?} {family:?}");
    }
}
