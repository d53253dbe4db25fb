//! The picture (issue 11): `credtrail report` on the demo writes one self-contained HTML page
//! that a real headless browser (Debian's `chromium`, installed by `.ci/run`) renders: its DOM
//! shows the incidents, and its screenshot is not blank.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The demo's alerts, and the report written from them.
fn demo_report(dir: &Path) -> (PathBuf, String) {
    let (text, _, _d) = replay(
        &pack(),
        &[PathBuf::from("datasets/demo/events.jsonl")],
        2,
        "5m",
    );
    let alerts = dir.join("alerts.jsonl");
    std::fs::write(&alerts, text).unwrap();
    let html = dir.join("report.html");
    let n = credtrail::tooling::report::write_html(&alerts, &html).unwrap();
    assert_eq!(n, 3);
    let page = std::fs::read_to_string(&html).unwrap();
    (html, page)
}

#[test]
fn the_report_is_self_contained_and_lists_incidents_by_risk() {
    let dir = tempfile::tempdir().unwrap();
    let (_, page) = demo_report(dir.path());
    // Nothing is fetched: no scripts, stylesheets, images or frames from anywhere.
    for needle in ["<script", "<link", "<img", "<iframe", "src=", "url("] {
        assert!(!page.contains(needle), "{needle}");
    }
    assert_eq!(
        page.matches("<svg").count(),
        6,
        "a timeline and a waterfall per incident"
    );
    // (minijinja's HTML escaping writes `/` as `&#x2f;`.)
    let order: Vec<usize> = ["svc-reporting</h2>", "contoso\\eve</h2>", "dana</h2>"]
        .iter()
        .map(|s| page.find(s).unwrap_or_else(|| panic!("{s}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "by risk: {order:?}");
    // Values from alerts are escaped.
    assert!(page.contains("contoso\\eve"));
    assert!(page.contains("ModifySnapshotAttribute"));
    // Every step from one stage to the next is drawn with its duration, the longest in red;
    // one longest step per incident timeline.
    let gaps = page.matches("class=\"gap\"").count();
    assert!(gaps >= 3, "{gaps} gap labels");
    assert_eq!(page.matches("class=\"gap\" ").count(), gaps);
    assert!(page.contains(">+"), "gap labels read +duration");
    assert_eq!(
        page.matches("fill=\"#b3261e\">+").count(),
        3,
        "one longest step per incident"
    );
}

/// PNG pixels as RGB(A) rows, decoded with the zlib the crate already uses for `.gz` input.
fn png_pixels(bytes: &[u8]) -> (usize, usize, usize, Vec<u8>) {
    use std::io::Read;
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let data = &bytes[at + 8..at + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(data[8], 8, "8-bit samples");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    other => panic!("colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    let mut out = vec![0u8; stride * height];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        for x in 0..stride {
            let v = raw[y * (stride + 1) + 1 + x];
            let a = if x >= channels {
                out[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
            let c = if x >= channels && y > 0 {
                out[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((a as u16 + b as u16) / 2) as u8,
                4 => {
                    let p = a as i16 + b as i16 - c as i16;
                    let (pa, pb, pc) = (
                        (p - a as i16).abs(),
                        (p - b as i16).abs(),
                        (p - c as i16).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            out[y * stride + x] = v.wrapping_add(predicted);
        }
    }
    (width, height, channels, out)
}

#[test]
fn a_headless_browser_renders_the_report_with_its_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let (html, _) = demo_report(dir.path());
    let url = format!("file://{}", html.display());
    let chromium = |extra: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,1800",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("chromium (apt-get install chromium; .ci/run does): {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).unwrap();
    assert!(
        dom.contains("credtrail: 3 incident(s), 7 finding(s)"),
        "{dom}"
    );
    for text in [
        "arn:aws:iam::111122223333:user/svc-reporting",
        "contoso\\eve",
        "Create → Update ×2 → Close",
        "ct_exfiltration",
    ] {
        assert!(dom.contains(text), "{text}");
    }
    let shot = dir.path().join("report.png");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let (w, h, channels, pixels) = png_pixels(&std::fs::read(&shot).unwrap());
    assert_eq!((w, h), (1280, 1800));
    // Not blank: many pixels differ from the page background (the top-left pixel), and some
    // are the badges' and marks' colours.
    let background = &pixels[..3];
    let differing = pixels
        .chunks(channels)
        .filter(|p| &p[..3] != background)
        .count();
    assert!(
        differing > w * h / 50,
        "{differing} of {} pixels drawn",
        w * h
    );
    let coloured = pixels
        .chunks(channels)
        .filter(|p| p[2] as i16 - p[0] as i16 > 60)
        .count();
    assert!(
        coloured > 500,
        "{coloured} blue pixels (timeline marks, waterfall)"
    );
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&shot, root().join("docs/report.png")).unwrap();
    }
}
