//! Restoring applications end to end: the built binary, the API stand-in with its kubelet running
//! the data mover Jobs, and SeaweedFS with Object Lock.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use k10::objectstore::storage::{Storage, VersionedStorage};
use k10::repo::Repo;
use support::app::{fill, Fixture};
use support::tree;

/// The objects of namespace `ns` a backup captures, stripped of server-set fields, by kind/name.
fn app_objects(f: &Fixture, ns: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for (resource, group, plural) in [
        ("configmaps", "", "configmaps"),
        ("secrets", "", "secrets"),
        ("services", "", "services"),
        ("persistentvolumeclaims", "", "persistentvolumeclaims"),
        ("deployments.apps", "apps", "deployments"),
        ("statefulsets.apps", "apps", "statefulsets"),
        ("widgets.example.com", "example.com", "widgets"),
    ] {
        for mut item in f.json(&["get", resource, "-n", ns])["items"].as_array().unwrap().clone() {
            let name = item["metadata"]["name"].as_str().unwrap().to_string();
            if name == "kube-root-ca.crt" {
                continue;
            }
            k10::restore::strip::server_fields(&mut item, group, plural, "any");
            if let Some(meta) = item["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
            item.as_object_mut().unwrap().remove("apiVersion");
            item.as_object_mut().unwrap().remove("kind");
            out.insert(format!("{plural}/{name}"), item);
        }
    }
    out
}

async fn backed_up_app() -> (Fixture, String) {
    let f = Fixture::new().await;
    fill(&f.volume("data"), &f.volume("www-db-0"));
    f.k10.run(&["policy", "create", "shop-backup", "--namespaces", "shop", "--profile", "immutable"]).ok();
    f.k10.run(&["policy", "run", "shop-backup", "--wait"]).ok();
    let content = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
    (f, content)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_namespace_comes_back_byte_for_byte_even_after_an_attack() {
    let (f, content) = backed_up_app().await;
    let before = app_objects(&f, "shop");
    assert!(before.len() >= 8, "{:?}", before.keys());
    let volumes = f.save_volumes("original-volumes");

    // The attack, with full S3 credentials: the snapshots are forgotten, every object hidden
    // behind a delete marker and overwritten with garbage.
    let spec = f.contents()[0]["spec"].clone();
    let repository = spec["repository"].as_str().unwrap().to_string();
    let password = f.password(spec["passwordSecret"].as_str().unwrap());
    let store = f.storage();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let repo = Repo::open(store.clone(), &repository, &password).await.unwrap();
    for s in repo.snapshots().await.unwrap() {
        repo.forget(&s.id).await.unwrap();
    }
    let objects = store.list(&repository).await.unwrap();
    for o in &objects {
        store.delete(&o.key).await.unwrap();
        store.put(&o.key, Bytes::from_static(b"ransom")).await.unwrap();
    }
    assert!(store.list_versions(&repository).await.unwrap().len() > objects.len() * 2);

    // The cluster side: the namespace is deleted entirely (volumes included).
    f.kubectl(&["delete", "namespace", "shop"]);
    assert!(!f.volume("data").exists());

    let out = f.k10.run(&["restore", &content, "-n", "shop", "--wait"]).ok();
    println!("{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let pos = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} missing:\n{}", out.stdout));
    // Volumes are filled before the workloads that mount them are created.
    assert!(pos("created  volume data of data") < pos("created  Deployment/web"));
    assert!(pos("created  volume data of www-db-0") < pos("created  StatefulSet/db"));
    assert!(pos("created  PersistentVolumeClaim/data") < pos("created  volume data of data"));

    let after = app_objects(&f, "shop");
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (key, want) in &before {
        assert_eq!(want, &after[key], "{key} differs after the restore");
    }
    for claim in ["data", "www-db-0"] {
        let (files, bytes) = tree::assert_same(&volumes.join(claim), &f.volume(claim));
        println!("volume {claim}: {files} files, {bytes} bytes identical");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_another_namespace_leaves_the_original_alone() {
    let (f, content) = backed_up_app().await;
    let rp = f.contents()[0]["spec"]["restorePointRef"]["name"].as_str().unwrap().to_string();
    let versions = |ns: &str| -> BTreeMap<String, String> {
        f.json(&["get", "configmaps,secrets,services,persistentvolumeclaims,deployments.apps,statefulsets.apps,widgets.example.com", "-n", ns])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (format!("{}/{}", i["kind"], i["metadata"]["name"]), i["metadata"]["resourceVersion"].as_str().unwrap().to_string()))
            .collect()
    };
    let original = versions("shop");
    f.k10.run(&["restore", &rp, "-n", "shop", "--target-namespace", "shop-copy", "--wait"]).ok();
    assert_eq!(original, versions("shop"), "an object of the original namespace was touched");
    let copy = app_objects(&f, "shop-copy");
    assert_eq!(app_objects(&f, "shop"), copy);
    let copy_root = f.server.volumes_root().join("shop-copy");
    tree::assert_same(&f.volume("data"), &copy_root.join("data"));
    tree::assert_same(&f.volume("www-db-0"), &copy_root.join("www-db-0"));

    // Restoring again: everything exists; skip says so, replace replaces.
    let again = f.k10.run(&["restore", &content, "--target-namespace", "shop-copy", "--wait"]).ok();
    assert!(again.stdout.contains("skipped  ConfigMap/settings (exists; --existing replace overwrites it)"), "{}", again.stdout);
    assert!(again.stdout.contains("skipped  volume data of data"), "{}", again.stdout);
    f.kubectl(&["patch", "configmap", "settings", "-n", "shop-copy", "--type=merge", "-p", r#"{"data":{"mode":"tampered"}}"#]);
    f.k10
        .run(&["restore", &content, "--target-namespace", "shop-copy", "--include", "ConfigMap", "--existing", "replace", "--wait"])
        .ok();
    assert_eq!(f.json(&["get", "configmap", "settings", "-n", "shop-copy"])["data"]["mode"], "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_restores_are_refused_clearly() {
    let (f, content) = backed_up_app().await;
    f.k10.run(&["restore", "no-such-point", "-n", "shop", "--wait"]).fails_with(&["restore point \"no-such-point\" not found"]);

    // The repository password Secret is missing.
    let secret = f.contents()[0]["spec"]["passwordSecret"].as_str().unwrap().to_string();
    let saved = f.json(&["get", "secret", &secret, "-n", "kasten-io"]);
    f.kubectl(&["delete", "secret", &secret, "-n", "kasten-io"]);
    f.k10
        .run(&["restore", &content, "--target-namespace", "x1", "--wait"])
        .fails_with(&[&format!("the repository password Secret kasten-io/{secret} is missing")]);
    let path = f.dir.path().join("secret.json");
    let mut restored = saved.clone();
    k10::restore::strip::server_fields(&mut restored, "", "secrets", "kasten-io");
    std::fs::write(&path, restored.to_string()).unwrap();
    f.kubectl(&["apply", "-f", path.to_str().unwrap()]);

    // The profile is gone.
    f.k10.run(&["profile", "delete", "immutable"]).ok();
    f.k10
        .run(&["restore", &content, "--target-namespace", "x2", "--wait"])
        .fails_with(&["the restore point's profile \"immutable\" no longer exists"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_restores_into_a_throwaway_namespace_and_compares() {
    let (f, content) = backed_up_app().await;
    let out = f.k10.run(&["restorepoint", "verify", &content]).ok();
    println!("{}", out.all());
    assert!(out.stdout.contains("manifests and 2 volumes restored identical"), "{}", out.stdout);
    let namespaces = f.kubectl(&["get", "namespaces", "-o", "name"]);
    assert!(!namespaces.contains("k10-verify-"), "the throw-away namespace was left: {namespaces}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_pack_is_named_and_nothing_is_silently_restored() {
    // Without Object Lock, data can be destroyed for good: a pack version is deleted.
    let f = Fixture::new().await;
    std::fs::write(f.volume("data").join("file.bin"), tree::noise(5, 2 * 1024 * 1024)).unwrap();
    let plain = support::s3::unique_bucket("plain");
    f.s3.create_plain_bucket(&plain).await;
    f.s3.client()
        .put_bucket_versioning()
        .bucket(&plain)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    f.k10.run(&["profile", "create", "plain", "--bucket", &plain, "--endpoint", &f.s3.endpoint]).ok();
    f.k10.run(&["policy", "create", "p", "--namespaces", "shop", "--profile", "plain"]).ok();
    f.k10.run(&["policy", "run", "p", "--wait"]).ok();
    let content = f.contents()[0]["metadata"]["name"].as_str().unwrap().to_string();
    let repository = f.contents()[0]["spec"]["repository"].as_str().unwrap().to_string();
    let client = f.s3.client();
    let listed = client.list_object_versions().bucket(&plain).prefix(format!("{repository}data/")).send().await.unwrap();
    // The largest pack holds the file's data (tree packs are small).
    let v = listed.versions().iter().max_by_key(|v| v.size().unwrap_or(0)).unwrap();
    client.delete_object().bucket(&plain).key(v.key().unwrap()).version_id(v.version_id().unwrap()).send().await.unwrap();
    let destroyed = [v.key().unwrap().rsplit('/').next().unwrap()[..8].to_string()];
    let out = f.k10.run(&["restore", &content, "--target-namespace", "damaged", "--wait"]);
    println!("{}", out.all());
    let out = out.fails_with(&["FAILED", "volume data of data", "damaged", "finished with"]);
    // The workload that mounts it is not started on empty data; the other volume is restored.
    assert!(out.stdout.contains("FAILED   Deployment/web: not created: the data of its volume data could not be restored"), "{}", out.stdout);
    assert!(out.stdout.contains("created  volume data of www-db-0"), "{}", out.stdout);
    assert!(!out.all().contains("rustic repair"), "{}", out.all());
    assert!(destroyed.iter().any(|p| out.all().contains(p.as_str())), "no destroyed pack named: {destroyed:?}");
    assert!(out.all().contains("file(s) affected: file.bin"), "the affected file is not listed:\n{}", out.all());
    // The volume is left empty rather than half-written.
    let restored = f.server.volumes_root().join("damaged").join("data");
    assert_eq!(std::fs::read_dir(&restored).map(|d| d.count()).unwrap_or(0), 0, "files were restored from damaged data");
}
