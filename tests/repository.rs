//! The repository on the in-memory store: backup, restore, documents, forget, point-in-time,
//! and every bad input (wrong password, damage, bad times, writes through a view).

mod support;

use std::sync::Arc;

use bytes::Bytes;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::pit::PointInTime;
use k10::objectstore::storage::{Storage, StorageError, VersionedStorage};
use k10::repo::{parse_point_in_time, ReadOnly, Repo, RepoError, RepoKey, Unlock, Writable};
use support::tree;

const PREFIX: &str = "k10/cluster/repos/ns-uid/";

async fn new_repo() -> (Arc<MemoryStorage>, Repo<Writable>) {
    let store = Arc::new(MemoryStorage::locked(chrono::Duration::days(50)));
    let repo = Repo::init(store.clone(), PREFIX, "pw").await.unwrap();
    (store, repo)
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_restore_documents_and_forget() {
    let (store, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::small(src.path());
    let snap = repo.backup_dir(src.path(), &["app=demo".into(), "kind=volume".into()]).await.unwrap();
    assert_eq!(snap.tags, vec!["app=demo", "kind=volume"]);
    assert!(snap.files >= 7, "{snap:?}");

    let docs = repo
        .backup_documents(
            vec![
                ("manifests/v1/configmaps/a.yaml".into(), Bytes::from_static(b"kind: ConfigMap\n")),
                ("index.json".into(), Bytes::from_static(b"{}")),
            ],
            &["kind=manifests".into()],
        )
        .await
        .unwrap();
    assert_eq!(repo.snapshots().await.unwrap().len(), 2);

    // As root (CI), the tree has entries of other owners, which the restore must keep.
    let as_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(src.path()).unwrap()) == 0;
    let owners: std::collections::BTreeSet<String> = tree::read(src.path())
        .entries
        .values()
        .map(|e| match e {
            k10::datamover::tree::Entry::Dir { owner, .. }
            | k10::datamover::tree::Entry::File { owner, .. }
            | k10::datamover::tree::Entry::Symlink { owner, .. } => owner.clone(),
        })
        .collect();
    assert!(!as_root || owners.len() == 4, "{owners:?}");
    // Extended attributes too, where the filesystem keeps them (ext4, xfs, btrfs, tmpfs do).
    let with_xattrs = tree::read(src.path()).entries.values().filter(|e| matches!(e, k10::datamover::tree::Entry::File { xattrs, .. } | k10::datamover::tree::Entry::Dir { xattrs, .. } if !xattrs.is_empty())).count();
    assert!(with_xattrs == 2 || xattr::list(src.path()).is_err(), "{with_xattrs} entries with extended attributes");
    let dest = tempfile::tempdir().unwrap();
    let restored = repo.restore(&snap.id, &dest.path().join("out")).await.unwrap();
    let (files, bytes) = tree::assert_same(src.path(), &dest.path().join("out"));
    assert_eq!(restored.bytes, bytes + "hello.txt".len() as u64 + "/nonexistent/target".len() as u64);
    assert_eq!(files, 6);
    assert_eq!(
        repo.read_document(&docs.id, "manifests/v1/configmaps/a.yaml").await.unwrap(),
        Bytes::from_static(b"kind: ConfigMap\n")
    );
    let missing = repo.read_document(&docs.id, "nope.yaml").await.unwrap_err();
    assert!(matches!(missing, RepoError::PathNotFound { .. }), "{missing}");

    // The store time of the snapshot is what a view must reach; forgetting leaves the data.
    let stored = repo.stored_at(&snap.id).await.unwrap();
    repo.forget(&snap.id).await.unwrap();
    let ids: Vec<String> = repo.snapshots().await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![docs.id.clone()]);
    let err = repo.restore(&snap.id, &dest.path().join("gone")).await.unwrap_err();
    assert!(matches!(err, RepoError::SnapshotNotFound { .. }), "{err}");
    assert!(!dest.path().join("gone").exists(), "a failed restore left a directory behind");

    let view = Repo::<ReadOnly>::open_at(store.clone(), PREFIX, stored, "pw").await.unwrap();
    let again = dest.path().join("again");
    view.restore(&snap.id, &again).await.unwrap();
    tree::assert_same(src.path(), &again);
    view.check(true).await.unwrap();
    repo.check(true).await.unwrap();

    // Restoring again over a complete restore verifies it and changes nothing; restoring over
    // anything that is not of the snapshot is refused, and leaves it alone.
    view.restore(&snap.id, &again).await.unwrap();
    tree::assert_same(src.path(), &again);
    std::fs::write(again.join("stranger.txt"), b"mine").unwrap();
    let err = view.restore(&snap.id, &again).await.unwrap_err();
    assert!(matches!(err, RepoError::DestinationNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("stranger.txt is not in snapshot"), "{err}");
    assert_eq!(std::fs::read(again.join("stranger.txt")).unwrap(), b"mine");
}

/// A data mover opens with the master key its Secret holds (no key derivation): it reads and
/// writes as the password does; another repository's key, a damaged one or one that is not
/// JSON is refused clearly, and no form of it shows the key.
#[tokio::test(flavor = "multi_thread")]
async fn the_master_key_opens_as_the_password_does() {
    let (store, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::small(src.path());
    let text = repo.key().to_secret();
    let key = RepoKey::parse(&text).unwrap();
    let by_key = Repo::open_with(store.clone(), PREFIX, Unlock::Key(&key)).await.unwrap();
    let snap = by_key.backup_dir(src.path(), &["by=key".into()]).await.unwrap();
    let stored = repo.stored_at(&snap.id).await.unwrap();
    let view = Repo::<ReadOnly>::open_at_with(store.clone(), PREFIX, stored, Unlock::Key(&key)).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    view.restore(&snap.id, &dest.path().join("out")).await.unwrap();
    tree::assert_same(src.path(), &dest.path().join("out"));
    assert_eq!(format!("{key:?}"), "RepoKey(…)");
    let secret_part = &text[text.find("\"encrypt\"").unwrap() + 11..][..20];
    assert!(!format!("{key:?}").contains(secret_part));

    // Another repository's key: refused, named, nothing written.
    let other = Repo::init(store.clone(), "k10/cluster/repos/other/", "pw").await.unwrap().key();
    let before = store.list_versions("").await.unwrap().len();
    let err = Repo::open_with(store.clone(), PREFIX, Unlock::Key(&other)).await.unwrap_err();
    assert!(matches!(err, RepoError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("the repository key does not open the repository at"), "{err}");
    assert_eq!(store.list_versions("").await.unwrap().len(), before);
    // Not a key: the error says what it should be and does not repeat the text.
    let quoted = r#"{"mac":"c2VjcmV0LWtleS1tYXRlcmlhbA=="}"#;
    for bad in ["", "pw", "{\"mac\":{}}", &text[..text.len() / 2], quoted] {
        let err = RepoKey::parse(bad).unwrap_err();
        assert!(matches!(err, RepoError::MalformedKey(_)), "{err}");
        assert!(err.to_string().contains("the repository key is malformed"), "{err}");
        assert!(bad.len() < 8 || !err.to_string().contains(&bad[..8]), "{err}");
        assert!(!err.to_string().contains("c2VjcmV0"), "key material in {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_are_refused_clearly() {
    let (store, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::small(src.path());
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();

    let err = Repo::open(store.clone(), PREFIX, "wrong").await.unwrap_err();
    assert!(matches!(err, RepoError::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("wrong password"), "{err}");
    let err = Repo::init(store.clone(), PREFIX, "pw").await.unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists { .. }), "{err}");
    let err = Repo::open(store.clone(), "k10/cluster/repos/other/", "pw").await.unwrap_err();
    assert!(matches!(err, RepoError::NoRepository { .. }), "{err}");

    // Times: before the repository existed, in the future, malformed.
    let before = chrono::Utc::now() - chrono::Duration::days(3);
    let err = Repo::<ReadOnly>::open_at(store.clone(), PREFIX, before, "pw").await.unwrap_err();
    assert!(matches!(err, RepoError::NoRepository { .. }), "{err}");
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let err = Repo::<ReadOnly>::open_at(store.clone(), PREFIX, future, "pw").await.unwrap_err();
    assert!(matches!(err, RepoError::FutureTime { .. }), "{err}");
    for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-01-02 15:04:05", ""] {
        assert!(matches!(parse_point_in_time(bad), Err(RepoError::MalformedTime(_))), "{bad}");
    }
    assert!(matches!(parse_point_in_time("2999-01-01T00:00:00Z"), Err(RepoError::FutureTime { .. })));
    assert!(parse_point_in_time("2026-01-02T15:04:05Z").is_ok());

    // Sources: missing, not a directory, unreadable file; nothing is written.
    let before_versions = store.list_versions("").await.unwrap().len();
    let err = repo.backup_dir(&src.path().join("missing"), &[]).await.unwrap_err();
    assert!(matches!(err, RepoError::Source { .. }), "{err}");
    let err = repo.backup_dir(&src.path().join("hello.txt"), &[]).await.unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(store.list_versions("").await.unwrap().len(), before_versions);
    let err = repo
        .backup_documents(vec![("../escape".into(), Bytes::new())], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Source { .. }), "{err}");

    // A writable repository on a point-in-time view: the write is refused, never silent.
    let view: Arc<dyn Storage> = Arc::new(PointInTime::new(store.clone(), PREFIX, chrono::Utc::now()).await.unwrap());
    let through_view = Repo::open(view, PREFIX, "pw").await.unwrap();
    let err = through_view.backup_dir(src.path(), &[]).await.unwrap_err();
    assert!(
        matches!(err, RepoError::Storage(StorageError::ReadOnly { .. })),
        "expected a read-only refusal, got {err}"
    );
    let err = through_view.forget(&snap.id).await.unwrap_err();
    assert!(matches!(err, RepoError::Storage(StorageError::ReadOnly { .. })), "{err}");
    assert_eq!(repo.snapshots().await.unwrap().len(), 1);
}

/// The keys of the repository's pack files.
async fn packs(store: &MemoryStorage) -> Vec<String> {
    store
        .list(&format!("{PREFIX}data/"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn damage_is_detected_and_named_never_restored() {
    // A missing pack.
    let (store, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::small(src.path());
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();
    let pack = packs(&store).await.pop().unwrap();
    store.delete(&pack).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = dest.path().join("out");
    let err = repo.restore(&snap.id, &out).await.unwrap_err();
    assert!(matches!(err, RepoError::Damaged { .. }), "{err}");
    let pack_id = pack.rsplit('/').next().unwrap();
    assert!(err.to_string().contains(&pack_id[..8]), "the damaged pack is not named: {err}");
    assert!(!out.exists(), "a damaged restore left files behind");
    let err = repo.check(false).await.unwrap_err();
    assert!(matches!(err, RepoError::Damaged { .. }), "{err}");

    // A flipped byte in every pack.
    let (store, repo) = new_repo().await;
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();
    for pack in packs(&store).await {
        let mut data = store.get(&pack, None).await.unwrap().to_vec();
        let middle = data.len() / 2;
        data[middle] ^= 0x01;
        store.put(&pack, Bytes::from(data)).await.unwrap();
    }
    let err = repo.check(true).await.unwrap_err();
    assert!(matches!(err, RepoError::Damaged { .. }), "{err}");
    let err = repo.restore(&snap.id, &out).await.unwrap_err();
    assert!(matches!(err, RepoError::Damaged { .. }), "{err}");
    assert!(!out.exists());
}

/// A sparse file comes back sparse (its holes are not written as zeros), and hard links come back
/// as links.
#[tokio::test(flavor = "multi_thread")]
async fn sparse_files_stay_sparse_and_hard_links_stay_links() {
    use std::os::unix::fs::MetadataExt;
    let (_, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    let sparse = src.path().join("disk.img");
    let file = std::fs::File::create(&sparse).unwrap();
    file.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &tree::noise(1, 1 << 20), 32 << 20).unwrap();
    drop(file);
    std::fs::write(src.path().join("original.txt"), b"one inode, two names").unwrap();
    std::fs::hard_link(src.path().join("original.txt"), src.path().join("link.txt")).unwrap();
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();

    let dest = tempfile::tempdir().unwrap();
    let restored = repo.read_only().restore(&snap.id, &dest.path().join("r")).await.unwrap();
    let r = dest.path().join("r");
    tree::assert_same(src.path(), &r);
    let meta = std::fs::metadata(r.join("disk.img")).unwrap();
    println!("disk.img: {} bytes, {} allocated; restore wrote {} bytes", meta.len(), meta.blocks() * 512, restored.written);
    assert_eq!(meta.len(), 64 << 20);
    assert!(meta.blocks() * 512 < 8 << 20, "the holes were written: {} bytes allocated", meta.blocks() * 512);
    let (a, b) = (std::fs::metadata(r.join("original.txt")).unwrap(), std::fs::metadata(r.join("link.txt")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "the hard link came back as a copy");
}

/// A volume's backups form a series: a file whose size or mtime changed is read again, the rest
/// is taken from the newest snapshot unread. A file rewritten with the same size and mtime is not
/// seen until the next full read (`FULL_READ_EVERY`; here forced with a zero interval) — the
/// limit the README states. Another series never lends its files.
#[tokio::test(flavor = "multi_thread")]
async fn a_series_reads_what_changed_and_everything_at_each_full_read() {
    use k10::repo::{READ_CHANGED, READ_FULL};
    let (_, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::mixed(src.path(), 4);
    let series = vec!["pvc-uid=one".to_string(), "kind=volume".to_string()];
    let week = chrono::Duration::days(7);
    let restored = |id: String| {
        let repo = repo.read_only();
        async move {
            let dest = tempfile::tempdir().unwrap();
            repo.restore(&id, &dest.path().join("r")).await.unwrap();
            dest
        }
    };

    let first = repo.backup_dir_in_series(src.path(), &series, &series, week).await.unwrap();
    assert!(first.tags.contains(&READ_FULL.to_string()) && first.files_unread == 0, "{first:?}");

    // Nothing changed: every file is taken from the parent.
    let second = repo.backup_dir_in_series(src.path(), &series, &series, week).await.unwrap();
    assert!(second.tags.contains(&READ_CHANGED.to_string()), "{second:?}");
    assert_eq!(second.files_unread, second.files, "{second:?}");

    // One file with a new mtime is read; one rewritten with the same size and mtime is not.
    let (seen, unseen) = (src.path().join("hello.txt"), src.path().join("sub/data.bin"));
    std::fs::write(&seen, b"a new greeting").unwrap();
    let mtime = std::fs::metadata(&unseen).unwrap().modified().unwrap();
    let mut data = std::fs::read(&unseen).unwrap();
    data[0] ^= 0xff;
    std::fs::write(&unseen, &data).unwrap();
    std::fs::File::options().write(true).open(&unseen).unwrap().set_modified(mtime).unwrap();
    let third = repo.backup_dir_in_series(src.path(), &series, &series, week).await.unwrap();
    assert_eq!(third.files_unread, third.files - 1, "{third:?}");
    let back = restored(third.id.clone()).await;
    assert_eq!(std::fs::read(back.path().join("r/hello.txt")).unwrap(), b"a new greeting");
    assert_ne!(std::fs::read(back.path().join("r/sub/data.bin")).unwrap(), data, "the same-size, same-mtime change was seen");

    // The next full read sees it.
    let full = repo.backup_dir_in_series(src.path(), &series, &series, chrono::Duration::zero()).await.unwrap();
    assert!(full.tags.contains(&READ_FULL.to_string()) && full.files_unread == 0, "{full:?}");
    let back = restored(full.id.clone()).await;
    tree::assert_same(src.path(), &back.path().join("r"));

    // Another volume with the same paths starts its own series with a full read; its snapshots
    // carry the series' tags even when not given them.
    let other = vec!["pvc-uid=two".to_string(), "kind=volume".to_string()];
    let theirs = repo.backup_dir_in_series(src.path(), &[], &other, week).await.unwrap();
    assert!(theirs.tags.contains(&READ_FULL.to_string()) && theirs.files_unread == 0, "{theirs:?}");
    let again = repo.backup_dir_in_series(src.path(), &[], &other, week).await.unwrap();
    assert_eq!((again.files_unread, again.tags.contains(&"pvc-uid=two".to_string())), (again.files, true), "{again:?}");
}

/// A destination where a directory of the snapshot is a symlink (planted by whoever can write to
/// the volume) is refused: a restore never writes through it, and nothing outside is touched.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_never_writes_through_a_symlink_in_the_destination() {
    let (_, repo) = new_repo().await;
    let src = tempfile::tempdir().unwrap();
    tree::small(src.path());
    let snap = repo.backup_dir(src.path(), &[]).await.unwrap();
    let (dest, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r = dest.path().join("r");
    std::fs::create_dir(&r).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("sub")).unwrap();
    let err = repo.read_only().restore(&snap.id, &r).await.unwrap_err();
    assert!(err.to_string().contains("in the way of a directory of the snapshot"), "{err}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "a restore wrote through the symlink");
}
