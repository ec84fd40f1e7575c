//! What only the sidecar setup has: the queue file on a writable volume (the
//! claim, or the `emptyDir` of `sidecar-emptydir/`), the app container in the
//! same pod receiving hookgate's deliveries on localhost with the secret they
//! are signed with, and the image's volume where the queue is mounted.

use serde_json::Value;

use super::manifests::{kustomize, mount_at, volume_named};
use super::{Kustomize, deploy_dir, port_named, read, strings, tool_available, yaml_docs};

/// The directory the config's SQLite queue file is in.
fn queue_dir(config: &Value) -> String {
    assert_eq!(config["queue"]["backend"], "sqlite");
    let path = config["queue"]["path"].as_str().expect("queue.path");
    assert!(
        path.starts_with('/'),
        "queue.path {path}: relative to what?"
    );
    path.rsplit_once('/').unwrap().0.to_owned()
}

#[test]
fn the_queue_is_on_the_claim_and_writable_by_hookgate() {
    let k = Kustomize::sidecar();
    let (_, config) = k.configmap_config();
    let dir = queue_dir(&config);
    let pod = k.pod();
    let hookgate = k.hookgate();
    let mount = mount_at(&hookgate, &dir).expect("a volume at the queue's directory");
    assert_ne!(mount["readOnly"], true);
    let volume = volume_named(&pod, mount["name"].as_str().unwrap());
    let claim = volume["persistentVolumeClaim"]["claimName"]
        .as_str()
        .expect("a claim");
    let pvc = k.object("PersistentVolumeClaim", claim);
    assert_eq!(strings(&pvc["spec"]["accessModes"]), ["ReadWriteOnce"]);
    // One hookgate per queue file: one replica, never two at once.
    let deployment = k.deployment();
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    // The volume's files belong to the image's user.
    let security = &pod["spec"]["securityContext"];
    assert_eq!(security["fsGroup"], security["runAsGroup"]);

    // The image declares the same directory as its volume.
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let volume_line = dockerfile
        .lines()
        .find(|l| l.starts_with("VOLUME "))
        .expect("VOLUME");
    assert!(volume_line.contains(&format!("\"{dir}\"")), "{volume_line}");
}

#[test]
fn the_app_gets_the_deliveries_on_localhost_with_their_secret() {
    let k = Kustomize::sidecar();
    let (_, config) = k.configmap_config();
    let targets = config["targets"].as_object().unwrap();
    let http: Vec<(&String, &Value)> = targets
        .iter()
        .filter(|(_, t)| t["kind"] == "http")
        .collect();
    assert_eq!(http.len(), 1, "one http target: the app");
    let (name, target) = http[0];
    let url = reqwest::Url::parse(target["url"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.host_str(),
        Some("127.0.0.1"),
        "{name}: the app is in the pod"
    );
    let app = k.container("app");
    assert_eq!(Some(port_named(&app, "http")), url.port());
    // The app verifies with the very Secret key hookgate signs with.
    let var = target["secret"]
        .as_str()
        .unwrap()
        .trim_start_matches("${")
        .trim_end_matches('}');
    let key_of = |container: &Value| -> Option<Value> {
        container["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == var)
            .map(|e| e["valueFrom"]["secretKeyRef"].clone())
    };
    let hookgate_key = key_of(&k.hookgate()).expect("hookgate gets the secret");
    assert_eq!(key_of(&app), Some(hookgate_key));
    // Every route leads to the app (the log target only takes the unmatched).
    for route in config["routes"].as_array().unwrap() {
        assert!(
            strings(&route["targets"]).contains(&name.as_str()),
            "{route}"
        );
    }
    // Ports are unique across the pod's containers.
    let mut names: Vec<&str> = Vec::new();
    let containers = k.pod()["spec"]["containers"].clone();
    for c in containers.as_array().unwrap() {
        for p in c["ports"].as_array().into_iter().flatten() {
            names.push(p["name"].as_str().unwrap());
        }
    }
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), before, "{names:?}");
}

#[test]
fn the_emptydir_overlay_swaps_the_claim_for_an_emptydir() {
    let dir = deploy_dir().join("kubernetes/sidecar-emptydir");
    let kustomization = yaml_docs(&dir.join("kustomization.yaml")).remove(0);
    assert_eq!(strings(&kustomization["resources"]), ["../sidecar/"]);
    for patch in kustomization["patches"].as_array().unwrap() {
        assert!(!yaml_docs(&dir.join(patch["path"].as_str().unwrap())).is_empty());
    }
    if !tool_available(
        "kubectl",
        &["version", "--client"],
        "rendering deploy/kubernetes/sidecar-emptydir",
    ) {
        return;
    }
    let out = kustomize(&dir);
    super::assert_success(&out);
    let docs: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap())
        .expect("kustomize's output parses");
    assert!(docs.iter().all(|d| d["kind"] != "PersistentVolumeClaim"));
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the Deployment");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let (_, config) = Kustomize::sidecar().configmap_config();
    let pod = &deployment["spec"]["template"];
    let hookgate = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "hookgate")
        .unwrap()
        .clone();
    let mount = mount_at(&hookgate, &queue_dir(&config)).unwrap();
    let volume = volume_named(pod, mount["name"].as_str().unwrap());
    assert!(volume["emptyDir"].is_object(), "{volume}");
    assert!(volume["persistentVolumeClaim"].is_null(), "{volume}");
}
