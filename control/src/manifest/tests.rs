use super::*;

fn run(text: &str, action: Action) -> Result<Output, Vec<String>> {
    process(
        &[Source {
            name: "app.yaml".into(),
            text: text.into(),
        }],
        action,
    )
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec:\n  containers: [{name: app, image: app}]\n";

#[test]
fn other_kinds_pass_through_as_written_in_order() {
    let config = InjectConfig::default();
    let service = "# keep me\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n";
    let crd_deployment =
        "apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n";
    let text = format!("{service}---\n{POD}---\n{crd_deployment}");
    let out = run(&text, Action::Inject(&config)).unwrap();
    let docs: Vec<&str> = out.text.split("---\n").collect();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0], service);
    assert!(docs[1].contains("sluice-proxy"));
    assert_eq!(docs[2], crd_deployment);
    let back = run(&out.text, Action::Uninject).unwrap();
    let back_docs: Vec<&str> = back.text.split("---\n").collect();
    assert_eq!(back_docs[0], service);
    let pod: serde_json::Value = serde_norway::from_str(back_docs[1]).unwrap();
    assert_eq!(
        pod,
        serde_norway::from_str::<serde_json::Value>(POD).unwrap()
    );
}

#[test]
fn lists_and_cronjobs() {
    let config = InjectConfig::default();
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n- apiVersion: batch/v1\n  kind: CronJob\n  metadata: {{name: c}}\n  spec:\n    schedule: '* * * * *'\n    jobTemplate:\n      spec:\n        template:\n          spec:\n            restartPolicy: Never\n            containers: [{{name: job, image: job}}]\n",
        serde_json::to_string(&serde_norway::from_str::<serde_json::Value>(POD).unwrap()).unwrap()
    );
    let out = run(&list, Action::Inject(&config)).unwrap();
    let value: serde_json::Value = serde_norway::from_str(&out.text).unwrap();
    assert_eq!(
        value["items"][0]["spec"]["initContainers"][1]["name"],
        "sluice-proxy"
    );
    let template = &value["items"][1]["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        template["spec"]["initContainers"][1]["name"],
        "sluice-proxy"
    );
}

#[test]
fn errors_name_file_document_and_resource_and_nothing_is_output() {
    let config = InjectConfig::default();
    let bad_yaml = format!("{POD}---\nkind: [\n");
    let errors = run(&bad_yaml, Action::Inject(&config)).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("app.yaml: doc 2: not valid YAML"),
        "{errors:?}"
    );

    let bad_pod = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: {name: app}\n";
    let errors = run(&format!("{POD}---\n{bad_pod}"), Action::Inject(&config)).unwrap_err();
    assert!(
        errors[0].starts_with(
            "app.yaml: doc 2 (Deployment web): spec.template.spec.containers: invalid type"
        ),
        "{errors:?}"
    );
    let no_template = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {}\n";
    let errors = run(no_template, Action::Inject(&config)).unwrap_err();
    assert_eq!(
        errors,
        [
            "app.yaml: doc 1 (StatefulSet db): spec.template: missing: a StatefulSet needs a pod template"
        ]
    );
    let errors = run("just text\n", Action::Inject(&config)).unwrap_err();
    assert!(
        errors[0].contains("doc 1: expected a Kubernetes resource"),
        "{errors:?}"
    );
    let errors = run("a: 1\n", Action::Inject(&config)).unwrap_err();
    assert!(
        errors[0].contains("apiVersion and kind are required"),
        "{errors:?}"
    );
    let annotated = POD.replace(
        "namespace: shop}",
        "namespace: shop, annotations: {proxy.sluice.dev/cpu: x}}",
    );
    let errors = run(&annotated, Action::Inject(&config)).unwrap_err();
    assert_eq!(
        errors,
        [
            "app.yaml: doc 1 (Pod shop/p): annotation proxy.sluice.dev/cpu: \"x\": not a Kubernetes quantity (e.g. 200m, 0.5, 128Mi, 1Gi)"
        ]
    );
}

#[test]
fn skips_are_noted_and_documents_kept() {
    let config = InjectConfig::default();
    let host = POD.replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let out = run(&host, Action::Inject(&config)).unwrap();
    assert_eq!(out.text, host);
    assert_eq!(
        out.notes,
        ["app.yaml: doc 1 (Pod shop/p): skipped: the pod uses hostNetwork"]
    );
    let system = POD.replace("namespace: shop", "namespace: kube-system");
    let out = run(&system, Action::Inject(&config)).unwrap();
    assert_eq!(out.text, system);
}

#[test]
fn empty_documents_are_dropped() {
    let config = InjectConfig::default();
    let out = run("---\n# nothing\n---\n", Action::Inject(&config)).unwrap();
    assert_eq!(out.text, "");
}
