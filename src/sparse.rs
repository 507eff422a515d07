//! The pod read sparsely, and written back by splicing.
//!
//! The policy reads and edits a few of a pod's fields, yet building the whole pod as a
//! `serde_json::Value` tree, serialising it again and dropping it was about half of its
//! own work (README, Performance). A [`SparsePod`] reads, in one pass over the request's
//! text, only the declared [`Fields`] into a tree — the *projection*, which the core reads
//! and edits as if it were the pod — and keeps every other member as a slice of the
//! request's text, copied back verbatim when the answer is written.
//!
//! An object on a declared path is read member by member: its skeleton remembers the
//! order of its members and the text of those not read. A list declared with `[]` is read
//! element by element; each element's projection carries its index under [`INDEX_KEY`],
//! so that the writer finds the element's text wherever the mutation moved it within its
//! list. An element the mutation made or replaced has no index and is written from the
//! tree. A value of another type than the declaration expects (an array for an object, a
//! string for a list) is read whole, so the core's shape checks see it as it is.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::fmt;

/// The member under which an element of a `[]` list keeps its index in the projection.
/// Only declared fields are read into the projection, so no pod can supply this key there.
pub const INDEX_KEY: &str = "\u{0}index";

/// A tree of fields to read, from paths such as `metadata.annotations` or
/// `spec.containers[].env`. Held inline and built by `const fn`s, so that a static's tree
/// costs a fresh instance nothing. Beyond [`Fields::CAPACITY`] nodes, a path's deepest node
/// that fits is read whole instead — slower, never wrong ([`Fields::overflowed`] tells).
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    nodes: [Node; Fields::CAPACITY],
    len: u8,
    /// Some path did not fit.
    overflowed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    name: &'static str,
    /// Read this value whole: a path ends here.
    whole: bool,
    /// The value is a list whose elements are read by the children.
    each: bool,
    /// Indexes into `nodes`; 0 is none (the root is no one's child).
    first_child: u8,
    next_sibling: u8,
}

const EMPTY: Node = Node {
    name: "",
    whole: false,
    each: false,
    first_child: 0,
    next_sibling: 0,
};

impl Fields {
    pub const CAPACITY: usize = 32;

    /// The tree of every path in `lists`; a `const fn`, so that a static's tree is built
    /// by the compiler rather than in every fresh instance.
    pub const fn from_lists(lists: &[&[&'static str]]) -> Fields {
        Fields {
            nodes: [EMPTY; Fields::CAPACITY],
            len: 1,
            overflowed: false,
        }
        .and(lists)
    }

    /// These fields and every path in `lists`.
    pub const fn and(mut self, lists: &[&[&'static str]]) -> Fields {
        let mut list = 0;
        while list < lists.len() {
            let mut path = 0;
            while path < lists[list].len() {
                self.add(lists[list][path]);
                path += 1;
            }
            list += 1;
        }
        self
    }

    /// Whether some path did not fit, so that part of the pod is read whole.
    pub const fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub const fn from_paths(paths: &[&'static str]) -> Fields {
        Fields::from_lists(&[paths])
    }

    const fn add(&mut self, path: &'static str) {
        let mut at = 0;
        let mut rest = path.as_bytes();
        while !rest.is_empty() {
            let mut dot = 0;
            while dot < rest.len() && rest[dot] != b'.' {
                dot += 1;
            }
            let (mut step, tail) = rest.split_at(dot);
            rest = match tail.split_first() {
                Some((_, after_dot)) => after_dot,
                None => tail,
            };
            let each =
                step.len() >= 2 && step[step.len() - 2] == b'[' && step[step.len() - 1] == b']';
            if each {
                step = step.split_at(step.len() - 2).0;
            }
            let Ok(name) = core::str::from_utf8(step) else {
                panic!("a field path is not UTF-8");
            };
            let mut child = self.child_of(at, name);
            if child == 0 {
                if self.len as usize == Fields::CAPACITY {
                    self.overflowed = true;
                    break;
                }
                child = self.len as usize;
                self.len += 1;
                self.nodes[child] = Node {
                    name,
                    next_sibling: self.nodes[at].first_child,
                    ..EMPTY
                };
                self.nodes[at].first_child = child as u8;
            }
            at = child;
            if each {
                self.nodes[at].each = true;
            }
        }
        self.nodes[at].whole = true;
    }

    /// The node named `name` under node `at`, or 0.
    const fn child_of(&self, at: usize, name: &str) -> usize {
        let mut child = self.nodes[at].first_child as usize;
        while child != 0 && !same(self.nodes[child].name, name) {
            child = self.nodes[child].next_sibling as usize;
        }
        child
    }

    fn root(&self) -> Field<'_> {
        self.field(0)
    }

    fn field(&self, at: usize) -> Field<'_> {
        Field { fields: self, at }
    }
}

/// One node of [`Fields`].
#[derive(Clone, Copy)]
struct Field<'f> {
    fields: &'f Fields,
    at: usize,
}

/// `a == b`, for `const fn`s.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl<'f> Field<'f> {
    fn node(self) -> &'f Node {
        &self.fields.nodes[self.at]
    }

    fn child(self, key: &str) -> Option<Field<'f>> {
        match self.fields.child_of(self.at, key) {
            0 => None,
            at => Some(self.fields.field(at)),
        }
    }

    fn reads_whole(self) -> bool {
        self.node().whole || self.node().first_child == 0
    }
}

/// How one value was read.
#[derive(Debug)]
enum Skeleton<'a> {
    /// Entirely in the projection.
    Whole,
    /// An object, member by member.
    Object(Vec<Member<'a>>),
    /// A list, element by element (indexed by the projection's [`INDEX_KEY`]).
    List(Vec<Skeleton<'a>>),
}

#[derive(Debug)]
struct Member<'a> {
    key: Cow<'a, str>,
    slot: Slot<'a>,
}

#[derive(Debug)]
enum Slot<'a> {
    /// Not read: its text, copied back as it came.
    Text(&'a RawValue),
    /// In the projection under the same key, read as the skeleton says.
    Read(Skeleton<'a>),
    /// A read member that the object gives again later: the last one counts, as when JSON
    /// is parsed into a tree.
    Superseded,
}

/// A pod read sparsely: the projection the core works on, the elements appended beside it,
/// and what it takes to write the whole pod back.
#[derive(Debug)]
pub struct SparsePod<'a> {
    skeleton: Skeleton<'a>,
    projection: Value,
    appended: Appended,
}

/// A step of a path from the pod's root: a member's name or a list element's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

/// List elements added beside the projection, as JSON text, and written after the
/// projection's own elements of their list. The mutation gives every container the same
/// env vars and mounts: as trees, each would be a JSON object per container, the largest
/// part of what an evaluation allocates (README, Performance). Each element's text is
/// stored once, and a list refers to it by its [`Element`] handle.
#[derive(Debug, Default)]
pub struct Appended {
    text: Vec<u8>,
    /// Where each element's text is in `text`.
    elements: Vec<(usize, usize)>,
    /// The lists given elements, in the order they were first given one: the path of each
    /// (its positions those of the projection as it is written), and its elements.
    lists: Vec<(Vec<Step<'static>>, ListElements)>,
    /// Indexes into `lists` in path order: the writer asks at every value it writes.
    by_path: Vec<usize>,
}

/// The elements given to one list: some before the projection's own, the rest after.
#[derive(Debug, Default)]
struct ListElements {
    before: Vec<Element>,
    after: Vec<Element>,
}

/// One element's text in an [`Appended`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element(usize);

/// A list of the pod in an [`Appended`], found once by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct List(usize);

impl Appended {
    /// Stores the JSON text of `value`, to be given to lists.
    pub fn element<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> serde_json::Result<Element> {
        let start = self.text.len();
        if let Err(e) = serde_json::to_writer(&mut self.text, value) {
            self.text.truncate(start);
            return Err(e);
        }
        self.elements.push((start, self.text.len()));
        Ok(Element(self.elements.len() - 1))
    }

    /// The list at `path`. It must be in the projection when the pod is written: its
    /// elements are written where the list is.
    pub fn list(&mut self, path: &[Step<'static>]) -> List {
        match self.find(path) {
            Ok(at) => List(self.by_path[at]),
            Err(at) => {
                self.lists.push((path.to_vec(), ListElements::default()));
                self.by_path.insert(at, self.lists.len() - 1);
                List(self.lists.len() - 1)
            }
        }
    }

    /// Appends `element` to `list`, after the projection's elements and those appended
    /// to it before.
    pub fn push(&mut self, list: List, element: Element) {
        self.lists[list.0].1.after.push(element);
    }

    /// Puts `element` before the projection's elements of `list`, after those put there
    /// before.
    pub fn push_before(&mut self, list: List, element: Element) {
        self.lists[list.0].1.before.push(element);
    }

    /// Puts `element` in place of the `nth` element given to `list` (counting those before
    /// the projection's elements, then those after); `false` when it has no such element.
    pub fn replace(&mut self, list: List, nth: usize, element: Element) -> bool {
        let list = &mut self.lists[list.0].1;
        let slot = match nth.checked_sub(list.before.len()) {
            None => list.before.get_mut(nth),
            Some(after) => list.after.get_mut(after),
        };
        match slot {
            Some(slot) => {
                *slot = element;
                true
            }
            None => false,
        }
    }

    /// Where `path` is in `by_path` (`Ok`), or would be (`Err`).
    fn find(&self, path: &[Step<'_>]) -> Result<usize, usize> {
        self.by_path
            .binary_search_by(|at| self.lists[*at].0.as_slice().cmp(path))
    }

    fn elements(&self, path: &[Step<'_>]) -> Option<&ListElements> {
        self.find(path)
            .ok()
            .map(|at| &self.lists[self.by_path[at]].1)
    }

    /// Whether some list at or below `path` was given elements.
    fn under(&self, path: &[Step<'_>]) -> bool {
        // The first path not before `path` is `path` itself or, if any, one below it.
        let at = self.find(path).unwrap_or_else(|at| at);
        (self.by_path.get(at)).is_some_and(|i| self.lists[*i].0.starts_with(path))
    }

    fn text_of(&self, element: Element) -> &[u8] {
        let (start, end) = self.elements[element.0];
        &self.text[start..end]
    }
}

impl<'a> SparsePod<'a> {
    /// Reads `text` (one JSON value) with `fields` in the projection.
    pub fn read(text: &'a str, fields: &Fields) -> Result<SparsePod<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let (skeleton, projection) = Reader::new(fields.root()).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(SparsePod {
            skeleton,
            projection,
            appended: Appended::default(),
        })
    }

    /// The declared fields, in the pod's shape.
    pub fn projection(&self) -> &Value {
        &self.projection
    }

    pub fn projection_mut(&mut self) -> &mut Value {
        &mut self.projection
    }

    /// The projection and the elements appended beside it, to edit both at once.
    pub fn parts_mut(&mut self) -> (&mut Value, &mut Appended) {
        (&mut self.projection, &mut self.appended)
    }

    /// Reads whole, into the projection, the elements of the `[]` list at `path` that
    /// `pick` chooses (given their projection), for code that compares or replaces whole
    /// elements.
    pub fn read_whole(
        &mut self,
        path: &[&str],
        pick: impl Fn(&Value) -> bool,
    ) -> Result<(), serde_json::Error> {
        let (mut skeleton, mut value) = (&mut self.skeleton, &mut self.projection);
        for step in path {
            let Skeleton::Object(members) = skeleton else {
                return Ok(());
            };
            let Some(member) = members
                .iter_mut()
                .find(|m| m.key == *step && matches!(m.slot, Slot::Read(_)))
            else {
                return Ok(());
            };
            let (Slot::Read(next), Some(next_value)) = (&mut member.slot, value.get_mut(*step))
            else {
                return Ok(());
            };
            (skeleton, value) = (next, next_value);
        }
        let (Skeleton::List(elements), Value::Array(items)) = (skeleton, value) else {
            return Ok(());
        };
        for item in items.iter_mut().filter(|item| pick(item)) {
            let Some(element) = index_of(item).and_then(|i| elements.get_mut(i)) else {
                continue;
            };
            let mut text = Vec::new();
            Writer::new(&mut text, &self.appended).value(element, item)?;
            *item = serde_json::from_slice(&text)?;
            // Read whole, the element's own members are in the projection: one named like
            // the index would send the writer to another element's text.
            if item.get(INDEX_KEY).is_some() {
                return Err(de::Error::custom(
                    "an element has a member named \"\\u0000index\", which no Kubernetes object has",
                ));
            }
            *element = Skeleton::Whole;
        }
        Ok(())
    }

    /// The whole pod as JSON: the projection, as the core left it, spliced into the text it
    /// was read from.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }

    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        Writer::new(out, &self.appended).value(&self.skeleton, &self.projection)
    }
}

fn index_of(item: &Value) -> Option<usize> {
    item.get(INDEX_KEY)
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
}

/// Writes a pod: the skeleton's text, the projection's values, and the appended elements at
/// the end of their lists, found by the path of the value being written.
struct Writer<'w> {
    out: &'w mut Vec<u8>,
    appended: &'w Appended,
    path: Vec<Step<'w>>,
}

impl<'w> Writer<'w> {
    fn new(out: &'w mut Vec<u8>, appended: &'w Appended) -> Self {
        Writer {
            out,
            appended,
            path: Vec::new(),
        }
    }

    fn value(&mut self, skeleton: &'w Skeleton, value: &'w Value) -> serde_json::Result<()> {
        match (skeleton, value) {
            (Skeleton::Object(members), Value::Object(tree)) => self.object(members, tree),
            (Skeleton::List(elements), Value::Array(items)) => self.list(items, |writer, item| {
                match index_of(item).and_then(|i| elements.get(i)) {
                    Some(element @ Skeleton::Object(_)) => writer.value(element, item),
                    _ => writer.plain(item),
                }
            }),
            _ => self.plain(value),
        }
    }

    /// A value of the projection alone: serialised as it is, unless lists in it were given
    /// elements.
    fn plain(&mut self, value: &'w Value) -> serde_json::Result<()> {
        if !self.appended.under(&self.path) {
            return serde_json::to_writer(&mut *self.out, value);
        }
        match value {
            Value::Object(tree) => self.object(&[], tree),
            Value::Array(items) => self.list(items, Writer::plain),
            _ => serde_json::to_writer(&mut *self.out, value),
        }
    }

    /// A list at the current path: the elements given before the projection's, the
    /// projection's (each by `item`), the elements given after them.
    fn list(
        &mut self,
        items: &'w [Value],
        mut item: impl FnMut(&mut Self, &'w Value) -> serde_json::Result<()>,
    ) -> serde_json::Result<()> {
        let appended = self.appended;
        let given = appended.elements(&self.path);
        let (before, after) = given.map_or((&[][..], &[][..]), |g| (&g.before[..], &g.after[..]));
        self.out.push(b'[');
        let mut first = true;
        for element in before {
            self.separate(&mut first);
            self.out.extend_from_slice(appended.text_of(*element));
        }
        for (i, value) in items.iter().enumerate() {
            self.separate(&mut first);
            self.path.push(Step::Index(i));
            item(self, value)?;
            self.path.pop();
        }
        for element in after {
            self.separate(&mut first);
            self.out.extend_from_slice(appended.text_of(*element));
        }
        self.out.push(b']');
        Ok(())
    }

    fn separate(&mut self, first: &mut bool) {
        if !std::mem::take(first) {
            self.out.push(b',');
        }
    }

    fn key(&mut self, first: &mut bool, key: &str) -> serde_json::Result<()> {
        self.separate(first);
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.push(b':');
        Ok(())
    }

    fn object(
        &mut self,
        members: &'w [Member],
        tree: &'w Map<String, Value>,
    ) -> serde_json::Result<()> {
        self.out.push(b'{');
        let mut first = true;
        for member in members {
            match &member.slot {
                Slot::Text(text) => {
                    self.key(&mut first, &member.key)?;
                    self.out.extend_from_slice(text.get().as_bytes());
                }
                // A member the core removed is left out.
                Slot::Read(skeleton) => {
                    if let Some(value) = tree.get(member.key.as_ref()) {
                        self.key(&mut first, &member.key)?;
                        self.path.push(Step::Key(&member.key));
                        self.value(skeleton, value)?;
                        self.path.pop();
                    }
                }
                Slot::Superseded => {}
            }
        }
        // Members the core added.
        for (name, value) in tree {
            let was_read = members
                .iter()
                .any(|m| matches!(m.slot, Slot::Read(_)) && m.key == name.as_str());
            if !was_read && name != INDEX_KEY {
                self.key(&mut first, name)?;
                self.path.push(Step::Key(name));
                self.plain(value)?;
                self.path.pop();
            }
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Reads one value by its declared fields; the result is its skeleton and projection.
#[derive(Clone, Copy)]
struct Reader<'f> {
    fields: Field<'f>,
    /// The value should be a `[]` list (rather than one of its elements).
    list: bool,
}

impl<'f> Reader<'f> {
    fn new(fields: Field<'f>) -> Self {
        Reader {
            fields,
            list: fields.node().each,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = (Skeleton<'de>, Value);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.fields.reads_whole() {
            return read_whole(deserializer);
        }
        deserializer.deserialize_any(self)
    }
}

// Kept out of line, like the visitor's object and list methods: each nesting level of a
// pod then costs the wasm stack one small frame, and a fresh instance touches fewer pages.
#[inline(never)]
fn read_whole<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<(Skeleton<'de>, Value), D::Error> {
    Ok((Skeleton::Whole, Value::deserialize(deserializer)?))
}

fn whole<'a, E>(value: Value) -> Result<(Skeleton<'a>, Value), E> {
    Ok((Skeleton::Whole, value))
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = (Skeleton<'de>, Value);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        whole(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        whole(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        whole(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        whole(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        whole(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        whole(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        whole(Value::Null)
    }

    #[inline(never)]
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if !self.list {
            return whole(Value::deserialize(SeqAccessDeserializer::new(seq))?);
        }
        let element = Reader {
            fields: self.fields,
            list: false,
        };
        let (mut elements, mut items) = (Vec::new(), Vec::new());
        while let Some((skeleton, mut item)) = seq.next_element_seed(element)? {
            if let (Skeleton::Object(_), Value::Object(map)) = (&skeleton, &mut item) {
                map.insert(INDEX_KEY.to_string(), Value::from(elements.len()));
            }
            elements.push(skeleton);
            items.push(item);
        }
        Ok((Skeleton::List(elements), Value::Array(items)))
    }

    #[inline(never)]
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.list {
            return whole(Value::deserialize(MapAccessDeserializer::new(map))?);
        }
        let mut members: Vec<Member<'de>> = Vec::new();
        let mut tree = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            let slot = match self.fields.child(&key) {
                None => Slot::Text(map.next_value::<&'de RawValue>()?),
                Some(fields) => {
                    let (skeleton, value) = map.next_value_seed(Reader::new(fields))?;
                    if tree.insert(key.to_string(), value).is_some() {
                        // Searching back only to the previous occurrence keeps hostile
                        // repetitions linear in the object's size.
                        if let Some(earlier) = members
                            .iter_mut()
                            .rev()
                            .find(|m| matches!(m.slot, Slot::Read(_)) && m.key == key)
                        {
                            earlier.slot = Slot::Superseded;
                        }
                    }
                    Slot::Read(skeleton)
                }
            };
            members.push(Member { key, slot });
        }
        Ok((Skeleton::Object(members), Value::Object(tree)))
    }
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Fields {
        Fields::from_paths(&[
            "metadata.annotations",
            "metadata.name",
            "spec.volumes",
            "spec.containers[].name",
            "spec.containers[].env",
        ])
    }

    fn round_trip(text: &str) -> Value {
        let pod = SparsePod::read(text, &fields()).unwrap();
        serde_json::from_slice(&pod.to_json().unwrap()).unwrap()
    }

    #[test]
    fn paths_beyond_the_capacity_are_read_whole_at_their_deepest_node() {
        // The root, spec, and fifteen `f<i>.x` pairs fill the capacity exactly.
        let full: Vec<&'static str> = (0..(Fields::CAPACITY - 2) / 2)
            .map(|i| &*format!("spec.f{i}.x").leak())
            .collect();
        let text = r#"{"spec":{"f0":{"x":1,"y":2},"f1":{"x":1,"y":2},"g":3},"z":4}"#;
        let whole: Value = serde_json::from_str(text).unwrap();
        let read = |extra: &'static str| {
            let paths: Vec<&'static str> = full.iter().copied().chain([extra]).collect();
            let fields = Fields::from_paths(&paths);
            assert!(fields.overflowed());
            let pod = SparsePod::read(text, &fields).unwrap();
            let out: Value = serde_json::from_slice(&pod.to_json().unwrap()).unwrap();
            assert_eq!(out, whole, "{extra}");
            pod.projection().clone()
        };
        // f0.y has no room: f0 is read whole, f1 still only by x.
        assert_eq!(
            read("spec.f0.y"),
            json!({"spec": {"f0": {"x": 1, "y": 2}, "f1": {"x": 1}}})
        );
        // g has no room: spec is read whole.
        assert_eq!(read("spec.g"), json!({"spec": whole["spec"]}));
    }

    #[test]
    fn an_untouched_pod_comes_back_as_it_came() {
        let text = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","uid":"u\u00e9","annotations":{"a":"1"}},"spec":{"containers":[{"name":"c","image":"i","env":[{"name":"E","value":"v"}],"resources":{"limits":{"cpu":1.5}}},7],"nodeName":"n"},"status":{}}"#;
        let pod = SparsePod::read(text, &fields()).unwrap();
        // Members not read keep their text byte for byte, in their order.
        assert_eq!(String::from_utf8(pod.to_json().unwrap()).unwrap(), text);
        assert_eq!(
            pod.projection(),
            &json!({
                "metadata": {"name": "p", "annotations": {"a": "1"}},
                "spec": {"containers": [
                    {"name": "c", "env": [{"name": "E", "value": "v"}], INDEX_KEY: 0},
                    7
                ]}
            })
        );
    }

    #[test]
    fn edits_to_the_projection_are_spliced_in() {
        let text = r#"{"metadata":{"uid":"u"},"spec":{"containers":[{"name":"a","image":"ia"},{"name":"b","image":"ib","env":null}],"dnsPolicy":"x"}}"#;
        let mut pod = SparsePod::read(text, &fields()).unwrap();
        let projection = pod.projection_mut();
        projection["metadata"]["annotations"] = json!({"k": "v"});
        projection["spec"]["volumes"] = json!([{"name": "vol"}]);
        let containers = projection["spec"]["containers"].as_array_mut().unwrap();
        containers.swap(0, 1);
        containers[0]["env"] = json!([{"name": "E"}]);
        containers.insert(0, json!({"name": "new", "image": "n"}));
        let out: Value = serde_json::from_slice(&pod.to_json().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({
                "metadata": {"uid": "u", "annotations": {"k": "v"}},
                "spec": {
                    "containers": [
                        {"name": "new", "image": "n"},
                        {"name": "b", "image": "ib", "env": [{"name": "E"}]},
                        {"name": "a", "image": "ia"}
                    ],
                    "dnsPolicy": "x",
                    "volumes": [{"name": "vol"}]
                }
            })
        );
    }

    #[test]
    fn values_of_another_shape_are_read_whole() {
        for text in [
            r#"{"spec":[1,2]}"#,
            r#"{"spec":{"containers":{"name":"c","image":"i"}}}"#,
            r#"{"spec":{"containers":"none"}}"#,
            r#""a pod""#,
            r#"{"metadata":null,"spec":{"containers":[[1],null,{"name":"c","x":{"y":[true]}}]}}"#,
        ] {
            let pod = SparsePod::read(text, &fields()).unwrap();
            let whole: Value = serde_json::from_str(text).unwrap();
            assert_eq!(round_trip(text), whole, "{text}");
            if !text.contains("\"x\"") {
                assert_eq!(pod.projection(), &whole, "{text}");
            }
        }
    }

    #[test]
    fn the_last_of_repeated_members_counts_as_in_a_tree() {
        let text = r#"{"spec":{"containers":[{"name":"a","image":"1"}],"x":1,"containers":[{"name":"b","image":"2"}]},"metadata":{"name":"m","name":"n"},"x":1,"x":2}"#;
        let pod = SparsePod::read(text, &fields()).unwrap();
        assert_eq!(pod.projection()["spec"]["containers"][0]["name"], "b");
        assert_eq!(pod.projection()["metadata"]["name"], "n");
        assert_eq!(
            round_trip(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn chosen_elements_are_read_whole() {
        let text = r#"{"spec":{"containers":[{"name":"a","image":"1"},{"name":"cwii-x","image":"2","env":[]}]}}"#;
        let mut pod = SparsePod::read(text, &fields()).unwrap();
        pod.read_whole(&["spec", "containers"], |c| c["name"] == "cwii-x")
            .unwrap();
        let containers = &pod.projection()["spec"]["containers"];
        assert_eq!(
            containers[1],
            json!({"name": "cwii-x", "image": "2", "env": []})
        );
        assert_eq!(containers[0]["image"], Value::Null);
        assert_eq!(
            round_trip(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&pod.to_json().unwrap()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn keys_with_escapes_are_matched_by_their_value() {
        let text = r#"{"sp\u0065c":{"containers":[{"n\u0061me":"c","\"q\"":1}]}}"#;
        let pod = SparsePod::read(text, &fields()).unwrap();
        assert_eq!(pod.projection()["spec"]["containers"][0]["name"], "c");
        assert_eq!(
            round_trip(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    fn element_texts(appended: &mut Appended, values: &[Value]) -> Vec<Element> {
        values
            .iter()
            .map(|v| appended.element(v).unwrap())
            .collect()
    }

    #[test]
    fn appended_elements_follow_their_lists_own_wherever_the_list_is_written() {
        let text = r#"{"spec":{"containers":[{"name":"a","image":"ia","env":[{"name":"OWN","value":"1"}]},{"name":"b","image":"ib"}],"x":1}}"#;
        let fields = Fields::from_paths(&["spec.containers[].name", "spec.containers[].env"]);
        let mut pod = SparsePod::read(text, &fields).unwrap();
        let (projection, appended) = pod.parts_mut();
        let containers = projection["spec"]["containers"].as_array_mut().unwrap();
        // b gets an env list, a container made by the core is put first, and a list the
        // core adds (initContainers) holds one container written from the tree alone.
        containers[1]["env"] = json!([]);
        containers.insert(
            0,
            json!({"name": "new", "env": [{"name": "N", "value": "n"}]}),
        );
        projection["spec"]["initContainers"] = json!([{"name": "init", "env": []}]);
        let [e1, e2, e3] = element_texts(
            appended,
            &[
                json!({"name": "E1", "value": "x\"y"}),
                json!({"name": "E2", "value": ""}),
                json!(7),
            ],
        )[..] else {
            unreachable!()
        };
        let env = |list: &'static str, index: usize| {
            [
                Step::Key("spec"),
                Step::Key(list),
                Step::Index(index),
                Step::Key("env"),
            ]
        };
        // Lists made in another order than their paths'.
        let init = appended.list(&env("initContainers", 0));
        for index in [2, 0, 1] {
            let list = appended.list(&env("containers", index));
            appended.push(list, e1);
            appended.push(list, e2);
        }
        appended.push(init, e1);
        let last = appended.list(&env("containers", 2));
        assert!(appended.replace(last, 1, e3));
        assert!(!appended.replace(last, 2, e3));
        let empty = appended.list(&env("initContainers", 1));
        assert!(!appended.replace(empty, 0, e3));
        let out = String::from_utf8(pod.to_json().unwrap()).unwrap();
        assert_eq!(
            out,
            concat!(
                r#"{"spec":{"containers":["#,
                r#"{"env":[{"name":"N","value":"n"},{"name":"E1","value":"x\"y"},{"name":"E2","value":""}],"name":"new"},"#,
                r#"{"name":"a","image":"ia","env":[{"name":"OWN","value":"1"},{"name":"E1","value":"x\"y"},{"name":"E2","value":""}]},"#,
                r#"{"name":"b","image":"ib","env":[{"name":"E1","value":"x\"y"},7]}"#,
                r#"],"x":1,"initContainers":[{"env":[{"name":"E1","value":"x\"y"}],"name":"init"}]}}"#
            )
        );
    }

    #[test]
    fn elements_go_before_or_after_the_lists_own_and_are_replaced_in_that_order() {
        let text = r#"{"spec":{"volumes":[{"name":"own"}],"containers":[]}}"#;
        let mut pod = SparsePod::read(text, &fields()).unwrap();
        let (_, appended) = pod.parts_mut();
        let [b1, b2, a1, r] = element_texts(
            appended,
            &[json!("b1"), json!("b2"), json!("a1"), json!("r")],
        )[..] else {
            unreachable!()
        };
        let volumes = appended.list(&[Step::Key("spec"), Step::Key("volumes")]);
        appended.push(volumes, a1);
        appended.push_before(volumes, b1);
        appended.push_before(volumes, b2);
        let containers = appended.list(&[Step::Key("spec"), Step::Key("containers")]);
        assert_eq!(
            appended.list(&[Step::Key("spec"), Step::Key("volumes")]),
            volumes
        );
        appended.push_before(containers, b1);
        appended.push(containers, a1);
        let written = |pod: &SparsePod| String::from_utf8(pod.to_json().unwrap()).unwrap();
        assert_eq!(
            written(&pod),
            r#"{"spec":{"volumes":["b1","b2",{"name":"own"},"a1"],"containers":["b1","a1"]}}"#
        );
        let (_, appended) = pod.parts_mut();
        assert!(appended.replace(volumes, 1, r));
        assert!(appended.replace(volumes, 2, r));
        assert!(!appended.replace(volumes, 3, r));
        assert_eq!(
            written(&pod),
            r#"{"spec":{"volumes":["b1","r",{"name":"own"},"r"],"containers":["b1","a1"]}}"#
        );
    }

    #[test]
    fn a_pod_with_nothing_appended_is_written_from_the_tree_as_before() {
        let text = r#"{"spec":{"containers":[{"name":"a","env":[{"name":"E","value":"v"}]}]}}"#;
        let mut pod = SparsePod::read(text, &fields()).unwrap();
        let (_, appended) = pod.parts_mut();
        // An element stored but appended nowhere is written nowhere.
        appended.element(&json!({"name": "unused"})).unwrap();
        assert_eq!(String::from_utf8(pod.to_json().unwrap()).unwrap(), text);
    }

    #[test]
    fn an_element_read_whole_with_a_member_named_like_the_index_is_refused() {
        // Otherwise the writer would take the member for the element's index and write the
        // other element's text in its place.
        let text = r#"{"spec":{"containers":[{"name":"a","image":"ia"},{"name":"b","image":"ib","\u0000index":0}]}}"#;
        let mut pod = SparsePod::read(text, &fields()).unwrap();
        let error = pod
            .read_whole(&["spec", "containers"], |c| c["name"] == "b")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains(r#"a member named "\u0000index""#),
            "{error}"
        );
        // Read sparsely, the member is not in the projection, and comes back as it came.
        assert_eq!(
            round_trip(text),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn malformed_text_is_an_error() {
        for text in ["{", r#"{"spec":{"containers":[}"#, "{} x", r#"{"a":01}"#] {
            assert!(SparsePod::read(text, &fields()).is_err(), "{text}");
        }
    }
}
