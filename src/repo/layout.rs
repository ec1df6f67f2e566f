//! Where things live in a bucket: everything under `k10/<clusterID>/`, one repository per
//! application namespace (keyed by the namespace's UID) and one catalog repository for DR.

/// The root of one cluster's data: `k10/<clusterID>/`.
pub fn cluster_root(cluster_id: &str) -> String {
    format!("k10/{cluster_id}/")
}

/// The repository of an application namespace: `k10/<clusterID>/repos/<namespaceUID>/`.
pub fn app_repository(cluster_id: &str, namespace_uid: &str) -> String {
    format!("{}repos/{namespace_uid}/", cluster_root(cluster_id))
}

/// The DR catalog repository: `k10/<clusterID>/catalog/`.
pub fn catalog_repository(cluster_id: &str) -> String {
    format!("{}catalog/", cluster_root(cluster_id))
}

/// The cluster IDs that have data in a bucket, from its keys (`k10/probe/` is the store probe's).
pub fn cluster_ids<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids: Vec<String> = keys
        .into_iter()
        .filter_map(|k| k.strip_prefix("k10/")?.split('/').next())
        .filter(|id| !id.is_empty() && *id != "probe")
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(app_repository("c1", "u1"), "k10/c1/repos/u1/");
        assert_eq!(catalog_repository("c1"), "k10/c1/catalog/");
        assert_eq!(cluster_ids(["k10/a/config", "k10/b/x/y", "k10/a/z", "junk"]), vec!["a", "b"]);
    }
}
