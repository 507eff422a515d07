//! Applying plans to the pod as untyped JSON (SPEC §5). Only the paths the policy owns are
//! touched; everything else — including fields no compiled Kubernetes type knows — is left
//! exactly as it came. Earlier injection is recognised by content, so a second run on the
//! output finds nothing to do.

use crate::keys::INJECTED_MARKER;
use crate::provider::{
    ContainerList, Denial, Mount, Ownership, PlannedVolume, Position, ProviderPlan,
};
use crate::sparse::{Appended, Element, List, Step};
use crate::warnings::Warnings;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Names starting with this belong to the policy (volumes and init containers).
pub const RESERVED_PREFIX: &str = "cwii-";

/// The pod fields [`apply`] reads and edits; a container whose name a plan adds is also
/// read whole (see [`compared_whole`]).
pub const POD_FIELDS: &[&str] = &[
    "metadata.annotations",
    "spec.volumes",
    "spec.containers[].name",
    "spec.containers[].env",
    "spec.containers[].volumeMounts",
    "spec.initContainers[].name",
    "spec.initContainers[].env",
    "spec.initContainers[].volumeMounts",
];

/// Whether a container is one [`apply`] compares with a planned one as a whole (and may
/// replace): it has the name of a container the plans add.
pub fn compared_whole(plans: &[ProviderPlan]) -> impl Fn(&Value) -> bool + '_ {
    let names: BTreeSet<&str> = plans
        .iter()
        .flat_map(|p| &p.containers)
        .map(|c| name_of(&c.value))
        .collect();
    move |container| names.contains(name_of(container))
}

fn malformed(message: String) -> Denial {
    Denial {
        message: format!("cwii: cannot inject into a malformed pod: {message}"),
        code: 400,
    }
}

fn name_of(item: &Value) -> &str {
    item.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Checks the shape of everything the mutation will walk, so that it never meets a
/// surprise half-way.
fn check_shape(pod: &Value) -> Result<(), Denial> {
    let Some(spec) = pod.get("spec").and_then(Value::as_object) else {
        return Err(malformed("the pod has no spec object".into()));
    };
    match spec.get("containers") {
        Some(Value::Array(_)) => {}
        _ => return Err(malformed("spec.containers must be an array".into())),
    }
    for field in ["initContainers", "volumes"] {
        match spec.get(field) {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(_) => return Err(malformed(format!("spec.{field} must be an array"))),
        }
    }
    for field in ["containers", "initContainers"] {
        for (index, container) in spec
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(container) = container.as_object() else {
                return Err(malformed(format!("spec.{field}[{index}] is not an object")));
            };
            for list in ["env", "volumeMounts"] {
                match container.get(list) {
                    None | Some(Value::Null) | Some(Value::Array(_)) => {}
                    Some(_) => {
                        return Err(malformed(format!(
                            "spec.{field}[{index}].{list} must be an array"
                        )))
                    }
                }
            }
        }
    }
    match pod.get("metadata") {
        None | Some(Value::Object(_)) => {}
        Some(_) => return Err(malformed("metadata must be an object".into())),
    }
    match pod.get("metadata").and_then(|m| m.get("annotations")) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(malformed("metadata.annotations must be an object".into())),
    }
}

/// `/a/b/` and `/a/b` are the same mount point for the kubelet.
fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The containers that receive mounts and env: all app containers, and init containers
/// except the policy's own.
fn is_target(list: &str, container: &Value) -> bool {
    list == "containers" || !name_of(container).starts_with(RESERVED_PREFIX)
}

/// Applies every plan to the pod in place and says whether anything changed (tracked edit
/// by edit, so the caller needs no copy of the pod to compare with). Returns a denial, with
/// the pod untouched, when a container already mounts something else at a provider's path.
///
/// The mounts and env vars given to containers go to `appended` as text, beside the
/// projection `pod`; everything else is edited in `pod`. `known_providers` are the names an
/// earlier `cwii.dev/injected` may keep.
pub fn apply(
    pod: &mut Value,
    appended: &mut Appended,
    plans: &[ProviderPlan],
    known_providers: &[&str],
    warnings: &mut Warnings,
) -> Result<bool, Denial> {
    check_shape(pod)?;
    check_mount_clashes(pod, plans)?;
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(malformed("the pod has no spec object".into()));
    };
    let mut changed = false;
    upsert_volumes(spec, plans, appended, warnings, &mut changed)
        .map_err(|e| Denial::internal(format!("cannot write the injected volumes: {e}")))?;
    place_containers(spec, plans, warnings, &mut changed);
    // Each plan's mounts and env written as JSON once, however many containers take them.
    let elements = plans
        .iter()
        .map(|plan| PlanElements::of(plan, appended))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Denial::internal(format!("cannot write the injected mounts and env: {e}")))?;
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for (index, container) in containers.iter_mut().enumerate() {
            let mut given = Given::new(list, index);
            for (plan, elements) in plans.iter().zip(&elements) {
                let skipped = plan.skip_containers.iter().any(|s| s == name_of(container));
                if is_target(list, container) && !skipped {
                    let edit = Edit {
                        appended: &mut *appended,
                        warnings: &mut *warnings,
                        changed: &mut changed,
                    };
                    inject_container(container, plan, elements, &mut given, edit);
                }
            }
        }
    }
    annotate(pod, plans, known_providers, &mut changed);
    Ok(changed)
}

fn check_mount_clashes(pod: &Value, plans: &[ProviderPlan]) -> Result<(), Denial> {
    for list in ["containers", "initContainers"] {
        let containers = pod
            .get("spec")
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| is_target(list, c));
        for container in containers {
            let name = name_of(container);
            let mounts = container
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            for existing in mounts {
                let path = existing
                    .get("mountPath")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let volume = name_of(existing);
                for plan in plans
                    .iter()
                    .filter(|p| !p.skip_containers.iter().any(|s| s == name))
                {
                    if let Some(wanted) = plan
                        .mounts
                        .iter()
                        .find(|m| same_path(&m.path, path) && m.volume != volume)
                    {
                        return Err(Denial {
                            message: format!(
                                "cwii: container '{name}' already mounts volume '{volume}' at {}, where {} needs its token; \
                                 remove that mount or list the container in cwii.dev/{}-skip-containers",
                                wanted.path, plan.provider, plan.provider
                            ),
                            code: 400,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The array at `field`, created when absent (or `null`: check_shape refused other types).
fn array_field<'a>(
    object: &'a mut Map<String, Value>,
    field: &str,
    changed: &mut bool,
) -> Option<&'a mut Vec<Value>> {
    let slot = object.entry(field.to_string()).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
        *changed = true;
    }
    slot.as_array_mut()
}

/// `spec.volumes`, where the plans' volumes go.
const VOLUMES: [Step<'static>; 2] = [Step::Key("spec"), Step::Key("volumes")];

fn upsert_volumes(
    spec: &mut Map<String, Value>,
    plans: &[ProviderPlan],
    appended: &mut Appended,
    warnings: &mut Warnings,
    changed: &mut bool,
) -> serde_json::Result<()> {
    let Some(volumes) = array_field(spec, "volumes", changed) else {
        return Ok(());
    };
    // The volumes given so far, as the list counts its given elements: those put before
    // the pod's own, then those after. A later plan's volume of the same name takes the
    // place of one, as it would replace it in the list.
    let (mut before, mut after): (Vec<&PlannedVolume>, Vec<&PlannedVolume>) = Default::default();
    for planned in plans.iter().flat_map(|p| &p.volumes) {
        let name = planned.name.as_str();
        // Read into a tree only to be compared with the pod's volume of that name.
        let mut desired = match volumes.iter().any(|v| name_of(v) == name) {
            true => Some(serde_json::from_str::<Value>(planned.json.get())?),
            false => None,
        };
        let mut seen = false;
        let mut replaced = false;
        volumes.retain_mut(|existing| {
            if name_of(existing) != name {
                return true;
            }
            if seen {
                // A second volume of a reserved name can only be a leftover: drop it.
                replaced = true;
                return false;
            }
            seen = true;
            if let Some(desired) = desired.take().filter(|d| d != existing) {
                *existing = desired;
                replaced = true;
            }
            true
        });
        let earlier = (before.iter().chain(&after)).position(|v| v.name == name);
        if let (false, Some(nth)) = (seen, earlier) {
            seen = true;
            let previous = if nth < before.len() {
                &mut before[nth]
            } else {
                &mut after[nth - before.len()]
            };
            if previous.json.get() != planned.json.get() {
                let element = appended.element(&*planned.json)?;
                let list = appended.list(&VOLUMES);
                appended.replace(list, nth, element);
                *previous = planned;
                replaced = true;
            }
        }
        if !seen {
            let element = appended.element(&*planned.json)?;
            let list = appended.list(&VOLUMES);
            if planned.first {
                appended.push_before(list, element);
                before.push(planned);
            } else {
                appended.push(list, element);
                after.push(planned);
            }
            *changed = true;
        }
        if replaced {
            *changed = true;
            warnings.push(format!(
                "cwii: replaced pod volume '{name}': the name is reserved for the policy"
            ));
        }
    }
    Ok(())
}

fn place_containers(
    spec: &mut Map<String, Value>,
    plans: &[ProviderPlan],
    warnings: &mut Warnings,
    changed: &mut bool,
) {
    if plans.iter().all(|p| p.containers.is_empty()) {
        return;
    }
    // A shared container (the azwi proxy) is added only when no container has its name.
    let existing_names: BTreeSet<String> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(*f).and_then(Value::as_array))
        .flatten()
        .map(|c| name_of(c).to_string())
        .collect();
    for list in [ContainerList::Init, ContainerList::App] {
        let select = |position: Position, ownership: Ownership| -> Vec<&Value> {
            plans
                .iter()
                .flat_map(|p| &p.containers)
                .filter(|c| c.list == list && c.position == position && c.ownership == ownership)
                .map(|c| &c.value)
                .filter(|c| {
                    ownership == Ownership::Reserved || !existing_names.contains(name_of(c))
                })
                .collect()
        };
        let leading = select(Position::First, Ownership::Reserved);
        let trailing = select(Position::Last, Ownership::Reserved);
        let shared_first = select(Position::First, Ownership::Shared);
        let shared_last = select(Position::Last, Ownership::Shared);
        if leading.is_empty()
            && trailing.is_empty()
            && shared_first.is_empty()
            && shared_last.is_empty()
        {
            continue;
        }
        let owned: BTreeSet<&str> = leading
            .iter()
            .chain(&trailing)
            .map(|c| name_of(c))
            .collect();
        let existing = array_field(spec, list.field(), changed)
            .map(std::mem::take)
            .unwrap_or_default();
        // The policy's own containers must be first (writers) and last (verify), each once.
        let in_place = {
            let (lead, rest) = existing.split_at(leading.len().min(existing.len()));
            let (middle, tail) = rest.split_at(rest.len().saturating_sub(trailing.len()));
            lead.iter().eq(leading.iter().copied())
                && tail.iter().eq(trailing.iter().copied())
                && !middle.iter().any(|c| owned.contains(name_of(c)))
        };
        if !in_place || !shared_first.is_empty() || !shared_last.is_empty() {
            *changed = true;
        }
        let (previous, kept): (Vec<Value>, Vec<Value>) = existing
            .into_iter()
            .partition(|c| owned.contains(name_of(c)));
        for desired in leading.iter().chain(&trailing) {
            let name = name_of(desired);
            let earlier: Vec<&Value> = previous.iter().filter(|c| name_of(c) == name).collect();
            if earlier.len() > 1 || earlier.first().is_some_and(|c| *c != *desired) {
                warnings.push(format!(
                    "cwii: replaced {} '{name}': the name is reserved for the policy",
                    match list {
                        ContainerList::Init => "init container",
                        ContainerList::App => "container",
                    }
                ));
            }
        }
        let placed: Vec<Value> = leading
            .into_iter()
            .chain(shared_first)
            .cloned()
            .chain(kept)
            .chain(shared_last.into_iter().chain(trailing).cloned())
            .collect();
        spec.insert(list.field().into(), Value::Array(placed));
    }
}

/// A mount as a container's `volumeMounts` holds it (members in name order, as a JSON
/// object map writes them).
#[derive(Serialize)]
struct MountItem<'a> {
    #[serde(rename = "mountPath")]
    mount_path: &'a str,
    name: &'a str,
    #[serde(rename = "readOnly")]
    read_only: bool,
}

impl<'a> MountItem<'a> {
    fn of(mount: &'a Mount) -> Self {
        MountItem {
            mount_path: &mount.path,
            name: &mount.volume,
            read_only: mount.read_only,
        }
    }

    /// Whether `item` is this mount exactly (the JSON equality of the two objects).
    fn is(&self, item: &Value) -> bool {
        item.as_object().is_some_and(|o| {
            o.len() == 3
                && o.get("mountPath").and_then(Value::as_str) == Some(self.mount_path)
                && o.get("name").and_then(Value::as_str) == Some(self.name)
                && o.get("readOnly") == Some(&Value::Bool(self.read_only))
        })
    }
}

/// An env var as a container's `env` holds it.
#[derive(Serialize)]
struct EnvItem<'a> {
    name: &'a str,
    value: &'a str,
}

impl EnvItem<'_> {
    /// Whether `item` is this env var exactly (the JSON equality of the two objects).
    fn is(&self, item: &Value) -> bool {
        item.as_object().is_some_and(|o| {
            o.len() == 2
                && o.get("name").and_then(Value::as_str) == Some(self.name)
                && o.get("value").and_then(Value::as_str) == Some(self.value)
        })
    }
}

/// A plan's mounts and env vars as appendable JSON text, in the plan's order.
struct PlanElements {
    mounts: Vec<Element>,
    env: Vec<Element>,
}

impl PlanElements {
    fn of(plan: &ProviderPlan, appended: &mut Appended) -> serde_json::Result<Self> {
        Ok(PlanElements {
            mounts: (plan.mounts.iter())
                .map(|m| appended.element(&MountItem::of(m)))
                .collect::<Result<_, _>>()?,
            env: (plan.env.iter())
                .map(|(name, value)| appended.element(&EnvItem { name, value }))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// What the plans before the current one appended to a container: the later plans treat
/// it as the container's own, as they would if it were in the projection.
struct Given<'p> {
    /// The container's list (`containers` or `initContainers`) and position in it.
    list: &'static str,
    index: usize,
    /// Its `volumeMounts` and `env` in the [`Appended`], once given an element.
    mounts_list: Option<List>,
    env_list: Option<List>,
    mounts: Vec<&'p Mount>,
    env: Vec<&'p (String, String)>,
}

impl Given<'_> {
    fn new(list: &'static str, index: usize) -> Self {
        Given {
            list,
            index,
            mounts_list: None,
            env_list: None,
            mounts: Vec::new(),
            env: Vec::new(),
        }
    }

    fn mounts_list(&mut self, appended: &mut Appended) -> List {
        let (list, index) = (self.list, self.index);
        *(self.mounts_list)
            .get_or_insert_with(|| container_list(appended, list, index, "volumeMounts"))
    }

    fn env_list(&mut self, appended: &mut Appended) -> List {
        let (list, index) = (self.list, self.index);
        *(self.env_list).get_or_insert_with(|| container_list(appended, list, index, "env"))
    }
}

/// `spec.<list>[index].<field>` in `appended`.
fn container_list(
    appended: &mut Appended,
    list: &'static str,
    index: usize,
    field: &'static str,
) -> List {
    appended.list(&[
        Step::Key("spec"),
        Step::Key(list),
        Step::Index(index),
        Step::Key(field),
    ])
}

/// Where one container's edits go.
struct Edit<'e> {
    appended: &'e mut Appended,
    warnings: &'e mut Warnings,
    changed: &'e mut bool,
}

fn inject_container<'p>(
    container: &mut Value,
    plan: &'p ProviderPlan,
    elements: &PlanElements,
    given: &mut Given<'p>,
    edit: Edit<'_>,
) {
    let container_name = name_of(container).to_string();
    if let Some(defined) =
        defines_a_member_of_each(container, &given.env, plan.leave_alone_when_defined)
    {
        edit.warnings.push(format!(
            "cwii: container '{container_name}' defines its own {}; {} left it alone (no mount, no env), as its webhook does",
            defined.join(", "),
            plan.provider
        ));
        return;
    }
    let Some(object) = container.as_object_mut() else {
        return;
    };
    let Some(mounts) = array_field(object, "volumeMounts", edit.changed) else {
        return;
    };
    for (mount, element) in plan.mounts.iter().zip(&elements.mounts) {
        let desired = MountItem::of(mount);
        let at_path = mounts.iter_mut().find(|m| {
            same_path(
                m.get("mountPath").and_then(Value::as_str).unwrap_or(""),
                &mount.path,
            )
        });
        // check_mount_clashes made sure one at the path mounts our volume; make it ours.
        if let Some(existing) = at_path {
            if !desired.is(existing) {
                *existing = mount.to_json();
                *edit.changed = true;
            }
        } else if let Some(nth) = given
            .mounts
            .iter()
            .position(|m| same_path(&m.path, &mount.path))
        {
            if given.mounts[nth] != mount {
                let list = given.mounts_list(edit.appended);
                edit.appended.replace(list, nth, *element);
                given.mounts[nth] = mount;
                *edit.changed = true;
            }
        } else {
            let list = given.mounts_list(edit.appended);
            edit.appended.push(list, *element);
            given.mounts.push(mount);
            *edit.changed = true;
        }
    }
    let Some(env) = array_field(object, "env", edit.changed) else {
        return;
    };
    let env: &[Value] = env;
    // The first item of that name, the container's own before the ones given: whether it
    // is exactly the plan's.
    let find = |given: &Given, name: &str, value: &str| -> Option<bool> {
        match env.iter().find(|e| name_of(e) == name) {
            Some(own) => Some(EnvItem { name, value }.is(own)),
            None => (given.env.iter())
                .find(|(n, _)| n == name)
                .map(|(_, v)| v == value),
        }
    };
    // Groups are decided on the container as it came, before anything is added.
    let mut withheld: Vec<&str> = Vec::new();
    for group in &plan.env_groups {
        let members: Vec<&(String, String)> = (plan.env.iter())
            .filter(|(name, _)| group.contains(&name.as_str()))
            .collect();
        let present: Vec<&str> = (members.iter())
            .map(|(name, _)| name.as_str())
            .filter(|name| find(given, name, "").is_some())
            .collect();
        if present.is_empty() {
            continue;
        }
        withheld.extend(members.iter().map(|(name, _)| name.as_str()));
        let all_set = members.iter().all(|(name, value)| {
            env.iter().any(|e| EnvItem { name, value }.is(e))
                || given.env.iter().any(|(n, v)| n == name && v == value)
        });
        if !all_set {
            let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
            edit.warnings.push(format!(
                "cwii: container '{container_name}' keeps its own {}; {} set none of {} (they go together)",
                present.join(", "),
                plan.provider,
                names.join(", ")
            ));
        }
    }
    for (pair, element) in plan.env.iter().zip(&elements.env) {
        let (name, value) = pair;
        if withheld.contains(&name.as_str()) {
            continue;
        }
        match find(given, name, value) {
            Some(true) => {}
            Some(false) => edit.warnings.push(format!(
                "cwii: container '{container_name}' keeps its own {name}; {} did not set it",
                plan.provider
            )),
            None => {
                let list = given.env_list(edit.appended);
                edit.appended.push(list, *element);
                given.env.push(pair);
                *edit.changed = true;
            }
        }
    }
}

/// For each group, the first member the container defines; `None` unless it defines one of
/// every group (and there are groups).
/// The container's env is its own and what earlier plans gave it.
fn defines_a_member_of_each(
    container: &Value,
    given: &[&(String, String)],
    groups: &[&[&str]],
) -> Option<Vec<String>> {
    if groups.is_empty() {
        return None;
    }
    let env = container.get("env").and_then(Value::as_array)?;
    groups
        .iter()
        .map(|group| {
            (env.iter().map(name_of))
                .chain(given.iter().map(|(name, _)| name.as_str()))
                .find(|n| group.contains(n))
                .map(str::to_string)
        })
        .collect()
}

fn annotate(pod: &mut Value, plans: &[ProviderPlan], known_providers: &[&str], changed: &mut bool) {
    // A webhook's layout leaves no marker: its own output must come back unchanged.
    if !plans.iter().any(|p| p.marker || !p.annotations.is_empty()) {
        return;
    }
    let Some(metadata) = pod.as_object_mut().map(|p| {
        p.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    }) else {
        return;
    };
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *changed = true;
        *annotations = Value::Object(Map::new());
    }
    let Some(annotations) = annotations.as_object_mut() else {
        return;
    };
    // The earlier marker is untrusted input: only provider names survive the merge.
    let mut injected: BTreeSet<String> = annotations
        .get(INJECTED_MARKER)
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| known_providers.contains(p))
        .map(str::to_string)
        .collect();
    injected.extend(
        plans
            .iter()
            .filter(|p| p.marker)
            .map(|p| p.provider.to_string()),
    );
    let marker = injected.into_iter().collect::<Vec<_>>().join(",");
    let marker_entry = (!marker.is_empty()).then_some((INJECTED_MARKER, marker.as_str()));
    let desired = marker_entry.into_iter().chain(
        plans
            .iter()
            .flat_map(|p| &p.annotations)
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    for (key, value) in desired {
        if annotations.get(key).and_then(Value::as_str) != Some(value) {
            annotations.insert(key.to_string(), Value::String(value.to_string()));
            *changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appended_items_are_the_json_objects_a_container_holds_byte_for_byte() {
        let hostile = "a\"b\\c\n}{,\u{7f}é\u{2028}";
        for (volume, path, read_only) in [
            ("cwii-az-token", "/var/run/x", true),
            (hostile, hostile, false),
        ] {
            let mount = Mount {
                volume: volume.into(),
                path: path.into(),
                read_only,
            };
            let tree = mount.to_json();
            assert_eq!(
                serde_json::to_string(&MountItem::of(&mount)).unwrap(),
                tree.to_string()
            );
            assert!(MountItem::of(&mount).is(&tree));
            let env = EnvItem {
                name: volume,
                value: path,
            };
            let tree = json!({"name": volume, "value": path});
            assert_eq!(serde_json::to_string(&env).unwrap(), tree.to_string());
            assert!(env.is(&tree));
        }
    }

    #[test]
    fn an_item_is_the_plans_only_when_the_objects_are_equal() {
        let mount = Mount {
            volume: "v".into(),
            path: "/p".into(),
            read_only: true,
        };
        let item = MountItem::of(&mount);
        for other in [
            json!({"name": "v", "mountPath": "/p", "readOnly": false}),
            json!({"name": "v", "mountPath": "/p/", "readOnly": true}),
            json!({"name": "v", "mountPath": "/p", "readOnly": "true"}),
            json!({"name": "v", "mountPath": "/p"}),
            json!({"name": "v", "mountPath": "/p", "readOnly": true, "subPath": "s"}),
            json!(["v", "/p", true]),
        ] {
            assert!(!item.is(&other), "{other}");
            assert_ne!(other, mount.to_json());
        }
        let env = EnvItem {
            name: "N",
            value: "v",
        };
        for other in [
            json!({"name": "N", "value": "w"}),
            json!({"name": "N"}),
            json!({"name": "N", "value": "v", "valueFrom": {}}),
            json!({"name": "N", "valueFrom": {"fieldRef": {}}}),
            json!({"name": "N", "value": 1}),
        ] {
            assert!(!env.is(&other), "{other}");
        }
    }
}
