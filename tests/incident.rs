//! `kubectl k10 incident` on SeaweedFS: an untouched bucket shows no tampering; after an attack
//! (restore points retired by hand, DR recording the empty catalog, a config overwritten, delete
//! markers and garbage on every object, a note outside k10's layout) it names the attack's first write and the point in
//! time before it, and recovering with that time brings the restore point back. It never writes:
//! the bucket's versions are listed before and after.

mod support;

use bytes::Bytes;
use k10::objectstore::storage::{Storage, VersionedStorage};
use support::app::Fixture;
use support::tree;

const PASSPHRASE: &str = "correct horse battery staple";

fn store_time(run: &str) -> chrono::DateTime<chrono::Utc> {
    let t = run.split("stored at ").nth(1).unwrap().split_whitespace().next().unwrap();
    chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc()
}

fn time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().to_utc()
}

/// Every version and delete marker in the bucket, with its time.
async fn everything(f: &Fixture) -> Vec<(String, String, bool, chrono::DateTime<chrono::Utc>)> {
    // Read-only itself: a listing through a writable store may write the version-clock probe.
    let store = f.storage().as_ref().clone().read_only();
    store.list_versions("").await.unwrap().into_iter().map(|v| (v.key, v.version_id, v.delete_marker, v.last_modified)).collect()
}

async fn protected_app() -> Fixture {
    let f = Fixture::new().await;
    tree::small(&f.volume("data"));
    std::fs::write(f.volume("data").join("one.bin"), tree::noise(3, 1 << 20)).unwrap();
    f.kubectl(&["create", "secret", "generic", "k10-dr-secret", "-n", "kasten-io", "--from-literal", &format!("key={PASSPHRASE}")]);
    f.k10.run(&["policy", "create", "shop", "--namespaces", "shop", "--profile", "immutable", "--retention", "hourly=1"]).ok();
    f.k10.run(&["dr", "enable", "--profile", "immutable", "--frequency", "@hourly"]).ok();
    f
}

fn incident(f: &Fixture, extra: &[&str]) -> serde_json::Value {
    let out = f.k10.run(&[&["incident", "--profile", "immutable", "-o", "json"][..], extra].concat()).ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untouched_bucket_shows_no_tampering_and_incident_writes_nothing() {
    let f = protected_app().await;
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    f.k10.run(&["dr", "run"]).ok();
    std::fs::write(f.volume("data").join("two.bin"), b"the next day").unwrap();
    // The second run's retention (hourly=1) retires the first restore point: k10's own doing.
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    let newest_dr = store_time(&f.k10.run(&["dr", "run"]).ok().stdout);

    let before = everything(&f).await;
    let t = incident(&f, &[]);
    let human = f.k10.run(&["incident", "--profile", "immutable"]).ok();
    assert_eq!(everything(&f).await, before, "incident wrote to the bucket");
    println!("{}", human.stdout);

    let verdict = &t["verdict"];
    assert_eq!(verdict["tampered"], false, "{t:#}");
    assert!(verdict.get("firstSign").is_none());
    assert!(human.stdout.contains("Verdict: no sign of tampering"), "{}", human.stdout);
    let groups = t["activity"].as_array().unwrap();
    assert!(groups.iter().all(|g| g["tampering"] == false), "false tampering: {groups:#?}");
    let retention = groups.iter().find(|g| g["kind"] == "retention").expect("the retention's retirement is listed");
    // The first restore point's three snapshots: two volumes and the manifests.
    assert_eq!(retention["count"], 3, "{retention}");
    assert_eq!(time(&verdict["pointInTime"]), newest_dr);
    assert_eq!(t["clusterId"], f.server.default_namespace_uid());
    assert_eq!(t["drSnapshots"].as_array().unwrap().len(), 2);
    assert!(t["drSnapshots"].as_array().unwrap().iter().all(|d| d["reads"] == true && d["restorePoints"] == 1), "{t:#}");
    let points = t["namespaces"][0]["restorePoints"].as_array().unwrap();
    assert_eq!((t["namespaces"][0]["namespace"].as_str(), points.len()), (Some("shop"), 1));
    assert_eq!(points[0]["reads"], true, "{points:?}");
    assert!(points[0]["protectedUntil"].is_string() && points[0].get("retiredAt").is_none());
    assert!(verdict["helm"].as_str().unwrap().contains("--set profile.name=immutable"));
    let days = verdict["daysLeft"].as_f64().unwrap();
    assert!((29.8..30.0).contains(&days), "{days}");

    // Bad input: another cluster ID (the IDs found are named), a wrong passphrase.
    let id = f.server.default_namespace_uid();
    f.k10.run(&["incident", "--profile", "immutable", "--source-cluster-id", "nope"]).fails_with(&["no catalog of cluster \"nope\"", &id]);
    f.kubectl(&["create", "secret", "generic", "wrong", "-n", "kasten-io", "--from-literal", "key=not the passphrase at all"]);
    f.k10.run(&["incident", "--profile", "immutable", "--passphrase-secret", "wrong"]).fails_with(&["wrong DR passphrase"]);
    f.k10.run(&["incident", "--profile", "missing"]).fails_with(&["missing"]);
    assert_eq!(everything(&f).await, before, "a refused incident wrote to the bucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_an_attack_incident_names_its_first_write_and_the_time_to_recover_to() {
    let f = protected_app().await;
    f.k10.run(&["policy", "run", "shop", "--wait"]).ok();
    let good_dr = store_time(&f.k10.run(&["dr", "run"]).ok().stdout);
    let volumes = f.save_volumes("before-the-attack");
    let rp = f.contents()[0]["spec"]["restorePointRef"]["name"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    // The attack: the tool retires the restore point and DR records the empty catalog; then the
    // bucket: a ransom note, a delete marker and garbage on every object.
    let began = chrono::Utc::now();
    f.k10.run(&["restorepoint", "retire", &rp, "-n", "shop"]).ok();
    let retired = chrono::Utc::now();
    f.k10.run(&["dr", "run"]).ok();
    let id = f.server.default_namespace_uid();
    let store = f.storage();
    store.put(&format!("k10/{id}/READ-ME-TO-RECOVER.txt"), Bytes::from_static(b"pay")).await.unwrap();
    store.put(&format!("k10/{id}/catalog/config"), Bytes::from_static(b"a config of the attacker's")).await.unwrap();
    for o in store.list(&format!("k10/{id}/")).await.unwrap() {
        store.delete(&o.key).await.unwrap();
        store.put(&o.key, Bytes::from_static(b"encrypted by the attacker")).await.unwrap();
    }
    f.kubectl(&["delete", "restorepointcontents.apps.kio.kasten.io", "--all"]);

    let before = everything(&f).await;
    let t = incident(&f, &[]);
    let human = f.k10.run(&["incident", "--profile", "immutable"]).ok();
    assert_eq!(everything(&f).await, before, "incident wrote to the bucket");
    println!("{}", human.stdout);

    // The first sign: the first delete marker the retirement put, by the store's clock.
    let first_marker = before.iter().filter(|(k, _, marker, _)| *marker && k.contains("/repos/") && k.contains("/snapshots/")).map(|v| v.3).min().unwrap();
    let sign = &t["verdict"]["firstSign"];
    assert_eq!((sign["kind"].as_str(), time(&sign["time"])), (Some("manual-retirement"), first_marker), "{t:#}");
    let at = time(&sign["time"]);
    assert!(at >= began - chrono::Duration::seconds(1) && at <= retired + chrono::Duration::seconds(1), "first sign {at} is not within a second of the retirement ({began} .. {retired})");
    let pit = time(&t["verdict"]["pointInTime"]);
    assert_eq!(pit, good_dr, "{t:#}");
    assert!(pit < at);
    let kinds: Vec<&str> = t["activity"].as_array().unwrap().iter().map(|g| g["kind"].as_str().unwrap()).collect();
    for kind in ["manual-retirement", "delete-marker", "overwrite", "forged-content", "outside-layout"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let drs = t["drSnapshots"].as_array().unwrap();
    assert_eq!(drs.len(), 2, "{drs:?}");
    assert_eq!((drs[0]["reads"].as_bool(), drs[0]["restorePoints"].as_u64()), (Some(true), Some(1)));
    assert_eq!((drs[1]["reads"].as_bool(), drs[1]["restorePoints"].as_u64()), (Some(true), Some(0)), "the attack's DR run recorded an empty catalog");
    let point = &t["namespaces"][0]["restorePoints"][0];
    assert_eq!((point["name"].as_str(), point["reads"].as_bool()), (Some(rp.as_str()), Some(true)), "{point}");
    assert!(time(&point["retiredAt"]) == first_marker || time(&point["retiredAt"]) > first_marker);
    assert!(human.stdout.contains(&format!("--set pointInTime={}", t["verdict"]["pointInTime"].as_str().unwrap())), "{}", human.stdout);

    // Once dealt with, an incident can be set aside: activity before --since is no sign.
    let dealt_with = k10::dr::rfc3339(chrono::Utc::now());
    let later = incident(&f, &["--since", &dealt_with]);
    assert_eq!(later["verdict"]["tampered"], false, "{:#}", later["verdict"]);
    assert!(later["activity"].as_array().unwrap().iter().any(|g| g["kind"] == "forged-content"), "still listed");

    // The recovery with that time brings the restore point back, and it restores.
    f.k10
        .run(&["dr", "restore", "--source-cluster-id", &id, "--profile", "immutable", "--point-in-time", t["verdict"]["pointInTime"].as_str().unwrap()])
        .ok();
    assert_eq!(f.contents().len(), 1);
    f.k10.run(&["restore", &rp, "-n", "shop", "--target-namespace", "shop-copy", "--wait"]).ok();
    tree::assert_same(&volumes.join("data"), &f.server.volumes_root().join("shop-copy").join("data"));
}
