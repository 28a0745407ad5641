//! The consumer's page in a real browser: headless Chromium (Debian's `chromium`, which
//! `scripts/check.sh` installs when it is missing; `CHROMIUM=/path` picks another) loads a
//! consumer's timeline page, and the goals appear in it, in order, as they are sent, with
//! no reload. Screenshots go to `target/goals-page-*.png`.

mod support;

use std::path::PathBuf;

use support::cdp::{chromium, Browser};
use support::goals::{goal, wait, Stack};
use zooweeper::queue::goal::Goal;

/// The goal lines the page shows, in page order.
const SHOWN: &str =
    "JSON.stringify([...document.querySelectorAll('li.goal')].map(e => e.firstChild.textContent))";

fn shown(b: &mut Browser) -> Vec<String> {
    let v = b.eval(SHOWN);
    serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default()
}

#[test]
fn the_timeline_page_shows_goals_in_order_as_they_arrive() {
    let chrome = chromium().expect(
        "no chromium on the PATH: scripts/check.sh installs Debian's chromium package \
         (apt-get install chromium), or set CHROMIUM=/path/to/chrome",
    );
    let mut s = Stack::start(3, 2, 1);
    let mut b = Browser::open(&chrome, &format!("{}/", s.consumer_url(0)));
    let title = wait("the page to load", || {
        let t = b.eval("document.title");
        t.as_str().filter(|t| !t.is_empty()).map(String::from)
    });
    assert_eq!(title, "Ordered List of Football Goals Timeline");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut sent: Vec<Goal> = Vec::new();
    // Goals go in one at a time; each appears on the open page, after the ones before.
    for i in 0..8u64 {
        let g = goal(i);
        assert_eq!(
            s.add_score((i % 2) as usize, Some(i % 3 + 1), None, &g).0,
            200
        );
        sent.push(g);
        let want: Vec<String> = sent.iter().map(Goal::line).collect();
        wait(&format!("goal {i} on the page"), || {
            let now = shown(&mut b);
            assert!(
                want.starts_with(&now),
                "the page shows {now:?}, not a prefix of {want:?}"
            );
            (now == want).then_some(())
        });
        if i == 3 {
            b.screenshot(&out.join("goals-page-4.png"));
        }
    }
    // The broker the consumer reads from dies: the page says where it failed over, and
    // goals keep coming.
    s.kill_broker(0);
    for i in 8..12u64 {
        let g = goal(i);
        assert_eq!(s.add_score(1, Some(i % 3 + 1), None, &g).0, 200);
        sent.push(g);
    }
    let want: Vec<String> = sent.iter().map(Goal::line).collect();
    wait("the goals after the failover on the page", || {
        (shown(&mut b) == want).then_some(())
    });
    let marks = b.eval("document.querySelectorAll('li.failover').length");
    assert_eq!(marks, 1, "one failover marked");
    // The mark takes no number: the goal after it is the 9th.
    let ninth = b.eval("[...document.querySelectorAll('li.goal')][8].value");
    assert_eq!(
        ninth, 9,
        "goals are numbered 1, 2, ... across a failover mark"
    );
    let shot = out.join("goals-page-12.png");
    b.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshots: {}", out.join("goals-page-*.png").display());
}
