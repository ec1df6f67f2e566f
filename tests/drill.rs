//! The README's drill, with less data: protect, attack with every credential, recover, verify.

mod support;

#[tokio::test(flavor = "multi_thread")]
async fn the_worst_case_drill() {
    let summary = support::drill::run(&support::cli::binary(), 8).await.expect("the drill");
    assert!(summary.bytes >= 8 * 1024 * 1024, "{summary:?}");
    assert!(summary.files >= 7 && summary.manifests >= 5, "{summary:?}");
}
