//! The path half of the routing table: path templates to a path index, matched one `/`
//! segment at a time.
//!
//! A node stands for a position between two segments. Its static children sit in a small
//! open-addressing hash table keyed by the whole segment, so a static segment costs one
//! hash of a few bytes and one compare, whatever the number of siblings (GitHub's API has 27
//! first segments); parameters are tried after it, in a fixed order, and the parameters'
//! values are kept as byte ranges into the request path (no allocation). A template is
//! refused at insert when it is ambiguous with another, by the rules `matchit` documents:
//!
//! - at one position: any number of static segments; then one group of parameters with a
//!   prefix and/or a suffix inside the segment (any number with only a prefix, any number
//!   with only a suffix, or a single one with both); then one standalone `{param}` or one
//!   standalone `{*catch_all}`;
//! - a catch-all never shares a position with a parameter that has a suffix.
//!
//! Templates without a parameter are also kept whole in one hash table of full paths, which
//! is looked up before the walk: a path equal to such a template is what the walk's first
//! choice at every segment (the static child) would reach, so the answer is the same, for
//! one hash and one compare instead of one per segment.
//!
//! Matching priority at each position: the static segment, then the parameters with a
//! prefix or suffix (longest prefix first, then longest suffix), then `{param}`, then
//! `{*catch_all}`. A branch that fails further down is backtracked out of, so a path is
//! routed whenever some template matches it. A parameter never matches an empty segment and
//! a catch-all never matches an empty rest.
//!
//! ```text
//! /users              static "users"
//! /users/{id}         static "users", then a parameter
//! /img/{name}.png     static "img", then a parameter with the suffix ".png"
//! /files/{*path}      static "files", then everything after "/files/" (not empty)
//! ```

/// Most parameters (catch-all included) in one template: the captured ranges of a match
/// live in a fixed array inside the match.
pub(crate) const MAX_PARAMS: usize = 8;

/// "No node" / "no path" in the `u32` links of the tree.
pub(crate) const NONE: u32 = u32::MAX;

/// The byte ranges of a match's parameters in the path, in template order.
pub(crate) type Captures = [(u32, u32); MAX_PARAMS];

/// One `/`-separated segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A literal segment (escapes `{{` and `}}` already resolved).
    Static(Box<[u8]>),
    /// `prefix{name}suffix`.
    Param {
        prefix: Box<[u8]>,
        suffix: Box<[u8]>,
    },
    /// `prefix{*name}`: the rest of the path; only the last segment.
    CatchAll { prefix: Box<[u8]> },
}

/// A parsed template: its segments and its parameter names in order.
#[derive(Debug)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
    pub(crate) names: Vec<Box<str>>,
}

/// Parses a template (which starts with `/`; the caller checks it).
pub(crate) fn parse(template: &str) -> Result<Template, String> {
    let body = template.strip_prefix('/').unwrap_or(template);
    let mut pieces = Vec::new();
    let mut names: Vec<Box<str>> = Vec::new();
    let mut segments = body.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let piece = parse_segment(segment, last, &mut names)?;
        pieces.push(piece);
    }
    if names.len() > MAX_PARAMS {
        return Err(format!("more than {MAX_PARAMS} parameters in one template"));
    }
    Ok(Template { pieces, names })
}

fn parse_segment(segment: &str, last: bool, names: &mut Vec<Box<str>>) -> Result<Piece, String> {
    let bytes = segment.as_bytes();
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut param: Option<bool> = None; // Some(catch_all)
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let next = bytes.get(i + 1).copied();
        let literal = if param.is_some() {
            &mut after
        } else {
            &mut before
        };
        match (byte, next) {
            (b'{', Some(b'{')) | (b'}', Some(b'}')) => {
                literal.push(byte);
                i += 2;
            }
            (b'}', _) => return Err("a '}' without its '{' (write '}}' for a literal one)".into()),
            (b'{', _) => {
                if param.is_some() {
                    return Err("more than one parameter in one segment".into());
                }
                let rest = bytes.get(i + 1..).unwrap_or_default();
                let Some(close) = rest.iter().position(|&b| b == b'}') else {
                    return Err("a '{' without its '}' (write '{{' for a literal one)".into());
                };
                let name = rest.get(..close).unwrap_or_default();
                let (catch_all, name) = match name.split_first() {
                    Some((b'*', name)) => (true, name),
                    _ => (false, name),
                };
                if name.is_empty() {
                    return Err("a parameter without a name".into());
                }
                if name.iter().any(|b| matches!(b, b'*' | b'{')) {
                    return Err("'*' or '{' inside a parameter name".into());
                }
                names.push(String::from_utf8_lossy(name).into());
                param = Some(catch_all);
                i += close + 2;
            }
            _ => {
                literal.push(byte);
                i += 1;
            }
        }
    }
    Ok(match param {
        None => Piece::Static(before.into()),
        Some(false) => Piece::Param {
            prefix: before.into(),
            suffix: after.into(),
        },
        Some(true) if last && after.is_empty() => Piece::CatchAll {
            prefix: before.into(),
        },
        Some(true) => return Err("a catch-all must end the template".into()),
    })
}

/// Why an insert was refused, and the path it collides with.
#[derive(Debug)]
pub(crate) struct Conflict {
    /// The path index of a template in the way.
    pub(crate) with: u32,
    pub(crate) why: &'static str,
}

/// A static child in a node's hash table; an empty slot has `child == NONE`.
#[derive(Debug)]
struct Slot {
    hash: u32,
    child: u32,
    segment: Box<[u8]>,
}

/// A parameter with a prefix or suffix, or a catch-all with a prefix.
#[derive(Debug)]
struct Affixed {
    prefix: Box<[u8]>,
    suffix: Box<[u8]>,
    catch_all: bool,
    /// The child node (a parameter) or the path index (a catch-all).
    target: u32,
    /// The path index of the template that added it (for conflict messages).
    origin: u32,
}

#[derive(Debug)]
struct Node {
    /// Static children by segment; empty or a power of two long, at most half full.
    table: Box<[Slot]>,
    /// Parameters with a prefix or suffix, in matching order.
    affixed: Vec<Affixed>,
    /// The child reached through a standalone `{param}`, or `NONE`.
    param: u32,
    /// The path index of a standalone `{*catch_all}`, or `NONE`.
    catch_all: u32,
    /// The path index of the template that ends after this node's segment, or `NONE`.
    value: u32,
    /// The path index of the template that created the node (for conflict messages).
    origin: u32,
    /// Static children in insertion order (the table is rebuilt from it).
    statics: Vec<(Box<[u8]>, u32)>,
}

impl Node {
    fn new(origin: u32) -> Self {
        Self {
            table: Box::default(),
            affixed: Vec::new(),
            param: NONE,
            catch_all: NONE,
            value: NONE,
            origin,
            statics: Vec::new(),
        }
    }

    #[inline]
    fn find_static(&self, segment: &[u8]) -> u32 {
        let mask = self.table.len().wrapping_sub(1);
        if self.table.is_empty() {
            return NONE;
        }
        let hash = hash(segment);
        let mut index = hash as usize & mask;
        // At most half full: the probe meets an empty slot.
        while let Some(slot) = self.table.get(index) {
            if slot.child == NONE {
                return NONE;
            }
            if slot.hash == hash && same(&slot.segment, segment) {
                return slot.child;
            }
            index = (index + 1) & mask;
        }
        NONE
    }

    fn rebuild_table(&mut self) {
        let size = (self.statics.len() * 2).next_power_of_two().max(2);
        let mut table: Vec<Slot> = (0..size)
            .map(|_| Slot {
                hash: 0,
                child: NONE,
                segment: Box::default(),
            })
            .collect();
        let mask = size - 1;
        for (segment, child) in &self.statics {
            let hash = hash(segment);
            let mut index = hash as usize & mask;
            while let Some(slot) = table.get_mut(index) {
                if slot.child == NONE {
                    *slot = Slot {
                        hash,
                        child: *child,
                        segment: segment.clone(),
                    };
                    break;
                }
                index = (index + 1) & mask;
            }
        }
        self.table = table.into();
    }
}

/// The index of the first `/`, eight bytes at a time (a segment is rarely longer than a
/// few words, and a byte loop costs a branch per byte).
#[inline]
fn find_slash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SLASHES: u64 = 0x2f2f_2f2f_2f2f_2f2f;
    let mut offset = 0;
    while let Some(chunk) = bytes.get(offset..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk) ^ SLASHES;
        // Lowest byte that was a '/' (zero now); bytes above a zero may be false hits, the
        // lowest one is exact.
        let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
        if zeros != 0 {
            return Some(offset + (zeros.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    bytes
        .get(offset..)?
        .iter()
        .position(|&b| b == b'/')
        .map(|i| offset + i)
}

/// Equal byte strings, compared inline with overlapping word loads up to 16 bytes (the
/// hashes already matched, so this is almost always a hit to confirm).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let byte = |s: &[u8], i: usize| s.get(i).copied();
    let short = |s: &[u8]| match (s.first_chunk::<4>(), s.last_chunk::<4>()) {
        (Some(first), Some(last)) => Some((u32::from_le_bytes(*first), u32::from_le_bytes(*last))),
        _ => None,
    };
    let long = |s: &[u8]| match (s.first_chunk::<8>(), s.last_chunk::<8>()) {
        (Some(first), Some(last)) => Some((u64::from_le_bytes(*first), u64::from_le_bytes(*last))),
        _ => None,
    };
    let len = a.len();
    match len {
        0 => true,
        1..=3 => {
            byte(a, 0) == byte(b, 0)
                && byte(a, len / 2) == byte(b, len / 2)
                && byte(a, len - 1) == byte(b, len - 1)
        }
        4..=7 => short(a) == short(b),
        8..=16 => long(a) == long(b),
        _ => a == b,
    }
}

/// A hash of a segment from its length and its first and last four bytes (the whole
/// segment below eight bytes), spread by a multiply.
#[inline]
fn hash(segment: &[u8]) -> u32 {
    let len = segment.len() as u64;
    let word = match (segment.first_chunk::<4>(), segment.last_chunk::<4>()) {
        (Some(first), Some(last)) => {
            (u64::from(u32::from_le_bytes(*first)) << 32) | u64::from(u32::from_le_bytes(*last))
        }
        _ => {
            let byte = |i: usize| u64::from(segment.get(i).copied().unwrap_or(0));
            byte(0) | (byte(segment.len() / 2) << 8) | (byte(segment.len().wrapping_sub(1)) << 16)
        }
    };
    ((word ^ (len << 56) ^ len).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The whole paths of the templates without a parameter, by open addressing: a table of
/// (hash, entry) pairs at most a quarter full, so a path that is not there (a request with
/// parameters) mostly meets an empty slot at the first probe.
#[derive(Debug, Default)]
struct ExactPaths {
    /// `(hash, index into entries)`; an empty slot has `NONE` as its entry.
    table: Box<[(u32, u32)]>,
    /// The paths and their path indexes.
    entries: Vec<(Box<[u8]>, u32)>,
}

impl ExactPaths {
    fn insert(&mut self, path: Box<[u8]>, index: u32) {
        self.entries.push((path, index));
        let size = (self.entries.len() * 4).next_power_of_two();
        let mut table = vec![(0u32, NONE); size];
        let mask = size - 1;
        for (entry, (path, _)) in self.entries.iter().enumerate() {
            let hash = hash_path(path);
            let mut slot = hash as usize & mask;
            while let Some(place) = table.get_mut(slot) {
                if place.1 == NONE {
                    *place = (hash, u32::try_from(entry).unwrap_or(NONE));
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        self.table = table.into();
    }

    #[inline]
    fn find(&self, path: &[u8]) -> u32 {
        let mask = self.table.len().wrapping_sub(1);
        let hash = hash_path(path);
        let mut slot = hash as usize & mask;
        while let Some(&(stored, entry)) = self.table.get(slot) {
            if entry == NONE {
                return NONE;
            }
            if stored == hash
                && let Some((candidate, index)) = self.entries.get(entry as usize)
                && same_path(candidate, path)
            {
                return *index;
            }
            slot = (slot + 1) & mask;
        }
        NONE
    }
}

/// A hash of a whole path from its length and its first and last eight bytes (a path is at
/// least the `/`, so short ones are read byte by byte).
#[inline]
fn hash_path(path: &[u8]) -> u32 {
    let len = path.len() as u64;
    let word = match (path.first_chunk::<8>(), path.last_chunk::<8>()) {
        (Some(first), Some(last)) => {
            u64::from_le_bytes(*first).rotate_left(29) ^ u64::from_le_bytes(*last)
        }
        _ => path
            .iter()
            .fold(0u64, |word, &byte| (word << 8) | u64::from(byte)),
    };
    ((word ^ (len << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// Equal paths, eight bytes at a time (the hashes matched, so this mostly confirms a hit).
#[inline]
fn same_path(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() <= 16 {
        return same(a, b);
    }
    let mut offset = 0;
    while let (Some(x), Some(y)) = (
        a.get(offset..).and_then(<[u8]>::first_chunk::<8>),
        b.get(offset..).and_then(<[u8]>::first_chunk::<8>),
    ) {
        if x != y {
            return false;
        }
        offset += 8;
    }
    a.last_chunk::<8>() == b.last_chunk::<8>()
}

/// Templates to path indexes.
#[derive(Debug)]
pub(crate) struct PathTree {
    /// `nodes[0]` is the root: the position right after the path's leading `/`.
    nodes: Vec<Node>,
    /// The templates without a parameter, whole.
    exact: ExactPaths,
}

impl Default for PathTree {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new(NONE)],
            exact: ExactPaths::default(),
        }
    }
}

impl PathTree {
    /// Adds a parsed template as path `index`. Nothing changes when it is refused.
    pub(crate) fn insert(&mut self, template: &Template, index: u32) -> Result<(), Conflict> {
        // First pass checks only, second pass builds: a refused template leaves no node.
        self.place(template, index, false)?;
        self.place(template, index, true)?;
        let mut whole = Vec::new();
        for piece in &template.pieces {
            let Piece::Static(segment) = piece else {
                return Ok(());
            };
            whole.push(b'/');
            whole.extend_from_slice(segment);
        }
        self.exact.insert(whole.into(), index);
        Ok(())
    }

    fn place(&mut self, template: &Template, index: u32, build: bool) -> Result<(), Conflict> {
        let mut node = 0usize;
        for piece in &template.pieces {
            let next = match piece {
                Piece::Static(segment) => self.static_child(node, segment, index, build),
                Piece::Param { prefix, suffix } => {
                    self.param_child(node, prefix, suffix, index, build)?
                }
                Piece::CatchAll { prefix } => {
                    return self.catch_all(node, prefix, index, build);
                }
            };
            // A node that does not exist yet cannot conflict with anything.
            let Some(next) = next else { return Ok(()) };
            node = next as usize;
        }
        let Some(node) = self.nodes.get_mut(node) else {
            return Ok(());
        };
        if node.value != NONE {
            return Err(Conflict {
                with: node.value,
                why: "the same path (parameter names aside)",
            });
        }
        if build {
            node.value = index;
        }
        Ok(())
    }

    fn new_node(&mut self, origin: u32) -> u32 {
        let id = u32::try_from(self.nodes.len()).unwrap_or(NONE);
        self.nodes.push(Node::new(origin));
        id
    }

    fn static_child(
        &mut self,
        node: usize,
        segment: &[u8],
        index: u32,
        build: bool,
    ) -> Option<u32> {
        let existing = self.nodes.get(node)?.find_static(segment);
        if existing != NONE || !build {
            return (existing != NONE).then_some(existing);
        }
        let child = self.new_node(index);
        let parent = self.nodes.get_mut(node)?;
        parent.statics.push((segment.into(), child));
        parent.rebuild_table();
        Some(child)
    }

    fn param_child(
        &mut self,
        node: usize,
        prefix: &[u8],
        suffix: &[u8],
        index: u32,
        build: bool,
    ) -> Result<Option<u32>, Conflict> {
        let Some(parent) = self.nodes.get(node) else {
            return Ok(None);
        };
        if prefix.is_empty() && suffix.is_empty() {
            if parent.catch_all != NONE {
                return Err(Conflict {
                    with: parent.catch_all,
                    why: "a catch-all at the same position",
                });
            }
            if parent.param != NONE || !build {
                return Ok((parent.param != NONE).then_some(parent.param));
            }
            let child = self.new_node(index);
            if let Some(parent) = self.nodes.get_mut(node) {
                parent.param = child;
            }
            return Ok(Some(child));
        }
        if let Some(same) = parent
            .affixed
            .iter()
            .find(|a| !a.catch_all && *a.prefix == *prefix && *a.suffix == *suffix)
        {
            return Ok(Some(same.target));
        }
        if let Some(with) = affix_conflict(parent, prefix, suffix, false) {
            return Err(with);
        }
        if !build {
            return Ok(None);
        }
        let child = self.new_node(index);
        if let Some(parent) = self.nodes.get_mut(node) {
            parent.affixed.push(Affixed {
                prefix: prefix.into(),
                suffix: suffix.into(),
                catch_all: false,
                target: child,
                origin: index,
            });
            sort_affixed(&mut parent.affixed);
        }
        Ok(Some(child))
    }

    fn catch_all(
        &mut self,
        node: usize,
        prefix: &[u8],
        index: u32,
        build: bool,
    ) -> Result<(), Conflict> {
        let Some(parent) = self.nodes.get(node) else {
            return Ok(());
        };
        if prefix.is_empty() {
            if parent.catch_all != NONE {
                return Err(Conflict {
                    with: parent.catch_all,
                    why: "another catch-all at the same position",
                });
            }
            if parent.param != NONE {
                return Err(Conflict {
                    with: self.origin(parent.param),
                    why: "a parameter at the same position",
                });
            }
            if let Some(suffixed) = parent.affixed.iter().find(|a| !a.suffix.is_empty()) {
                return Err(Conflict {
                    with: suffixed.origin,
                    why: "a parameter with a suffix at the same position",
                });
            }
            if build && let Some(parent) = self.nodes.get_mut(node) {
                parent.catch_all = index;
            }
            return Ok(());
        }
        if let Some(with) = affix_conflict(parent, prefix, &[], true) {
            return Err(with);
        }
        if build && let Some(parent) = self.nodes.get_mut(node) {
            parent.affixed.push(Affixed {
                prefix: prefix.into(),
                suffix: Box::default(),
                catch_all: true,
                target: index,
                origin: index,
            });
            sort_affixed(&mut parent.affixed);
        }
        Ok(())
    }

    fn origin(&self, node: u32) -> u32 {
        self.nodes.get(node as usize).map_or(NONE, |n| n.origin)
    }

    /// The path index a request path matches, with its parameters' ranges in `captures`.
    ///
    /// First a straight descent that takes the first choice at every segment (the static
    /// child, else the parameter, else the catch-all): it is what the full search tries
    /// first, so when it reaches a template that template is the answer. Only when it fails
    /// after passing a position with another choice does the backtracking search run.
    #[inline]
    pub(crate) fn find(&self, path: &str, captures: &mut Captures) -> u32 {
        let bytes = path.as_bytes();
        // Ranges are u32; a 4 GiB path matches nothing.
        if bytes.first() != Some(&b'/') || u32::try_from(bytes.len()).is_err() {
            return NONE;
        }
        let exact = self.exact.find(bytes);
        if exact != NONE {
            return exact;
        }
        let Some(root) = self.nodes.first() else {
            return NONE;
        };
        let mut node = root;
        let mut start = 1;
        let mut n = 0;
        let mut forked = false;
        loop {
            let rest = bytes.get(start..).unwrap_or_default();
            let (segment, next) = match find_slash(rest) {
                Some(slash) => (
                    rest.get(..slash).unwrap_or_default(),
                    Some(start + slash + 1),
                ),
                None => (rest, None),
            };
            let mut child = node.find_static(segment);
            if child != NONE {
                forked |= node.param != NONE || node.catch_all != NONE || !node.affixed.is_empty();
            } else if !node.affixed.is_empty() {
                // Parameters with affixes: rare enough to leave to the full search.
                forked = true;
                break;
            } else if node.param != NONE && !segment.is_empty() {
                let Some(capture) = captures.get_mut(n) else {
                    break;
                };
                *capture = (start as u32, (start + segment.len()) as u32);
                n += 1;
                child = node.param;
            } else if node.catch_all != NONE && !rest.is_empty() {
                let Some(capture) = captures.get_mut(n) else {
                    break;
                };
                *capture = (start as u32, bytes.len() as u32);
                return node.catch_all;
            } else {
                break;
            }
            let Some(entered) = self.nodes.get(child as usize) else {
                break;
            };
            match next {
                None if entered.value != NONE => return entered.value,
                None => break,
                Some(next) => {
                    node = entered;
                    start = next;
                }
            }
        }
        if forked {
            self.walk(root, bytes, 1, captures, 0)
        } else {
            NONE
        }
    }

    /// Matches the segments from `start` on, below `node`.
    fn walk(
        &self,
        node: &Node,
        path: &[u8],
        start: usize,
        captures: &mut Captures,
        n: usize,
    ) -> u32 {
        let rest = path.get(start..).unwrap_or_default();
        let (segment, next) = match find_slash(rest) {
            Some(slash) => (
                rest.get(..slash).unwrap_or_default(),
                Some(start + slash + 1),
            ),
            None => (rest, None),
        };
        let end = start + segment.len();
        let child = node.find_static(segment);
        if child != NONE {
            let found = self.enter(child, path, next, captures, n);
            if found != NONE {
                return found;
            }
        }
        if !node.affixed.is_empty() {
            let found = self.affixed(node, path, start, next, captures, n);
            if found != NONE {
                return found;
            }
        }
        if node.param != NONE
            && !segment.is_empty()
            && let Some(capture) = captures.get_mut(n)
        {
            *capture = (start as u32, end as u32);
            let found = self.enter(node.param, path, next, captures, n + 1);
            if found != NONE {
                return found;
            }
        }
        if node.catch_all != NONE
            && !rest.is_empty()
            && let Some(capture) = captures.get_mut(n)
        {
            *capture = (start as u32, path.len() as u32);
            return node.catch_all;
        }
        NONE
    }

    #[cold]
    fn affixed(
        &self,
        node: &Node,
        path: &[u8],
        start: usize,
        next: Option<usize>,
        captures: &mut Captures,
        n: usize,
    ) -> u32 {
        let rest = path.get(start..).unwrap_or_default();
        let end = next.map_or(path.len(), |next| next - 1);
        let segment = path.get(start..end).unwrap_or_default();
        for affixed in &node.affixed {
            let Some(capture) = captures.get_mut(n) else {
                return NONE;
            };
            let (prefix, suffix) = (&*affixed.prefix, &*affixed.suffix);
            if affixed.catch_all {
                if rest.len() > prefix.len() && rest.starts_with(prefix) {
                    *capture = ((start + prefix.len()) as u32, path.len() as u32);
                    return affixed.target;
                }
            } else if segment.len() > prefix.len() + suffix.len()
                && segment.starts_with(prefix)
                && segment.ends_with(suffix)
            {
                *capture = ((start + prefix.len()) as u32, (end - suffix.len()) as u32);
                let found = self.enter(affixed.target, path, next, captures, n + 1);
                if found != NONE {
                    return found;
                }
            }
        }
        NONE
    }

    /// Goes into `child`: its value when the path ends here, else the next segment.
    #[inline]
    fn enter(
        &self,
        child: u32,
        path: &[u8],
        next: Option<usize>,
        captures: &mut Captures,
        n: usize,
    ) -> u32 {
        let Some(child) = self.nodes.get(child as usize) else {
            return NONE;
        };
        match next {
            None => child.value,
            Some(start) => self.walk(child, path, start, captures, n),
        }
    }
}

/// Sorts parameters with affixes into matching order: longest prefix, then longest suffix.
fn sort_affixed(affixed: &mut [Affixed]) {
    affixed.sort_by(|a, b| {
        b.prefix
            .len()
            .cmp(&a.prefix.len())
            .then(b.suffix.len().cmp(&a.suffix.len()))
    });
}

/// Whether a new parameter with these affixes (or a catch-all with this prefix) would be
/// ambiguous with those already at this position.
fn affix_conflict(
    parent: &Node,
    prefix: &[u8],
    suffix: &[u8],
    catch_all: bool,
) -> Option<Conflict> {
    let kind = |prefix: &[u8], suffix: &[u8]| (!prefix.is_empty(), !suffix.is_empty());
    let new = kind(prefix, suffix);
    for existing in &parent.affixed {
        let old = kind(&existing.prefix, &existing.suffix);
        let why = if new == (true, true) || old == (true, true) {
            "a parameter with both a prefix and a suffix must be alone at its position"
        } else if new != old {
            "parameters with a prefix and parameters with a suffix at the same position"
        } else if (catch_all || existing.catch_all) && *existing.prefix == *prefix {
            "a catch-all and a parameter with the same prefix"
        } else {
            continue;
        };
        return Some(Conflict {
            with: existing.origin,
            why,
        });
    }
    if !suffix.is_empty() && parent.catch_all != NONE {
        return Some(Conflict {
            with: parent.catch_all,
            why: "a parameter with a suffix and a catch-all at the same position",
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(templates: &[&str]) -> PathTree {
        let mut tree = PathTree::default();
        for (index, template) in templates.iter().enumerate() {
            let parsed = parse(template).unwrap();
            tree.insert(&parsed, index as u32).unwrap();
        }
        tree
    }

    fn find(tree: &PathTree, path: &str) -> Option<(u32, Vec<String>)> {
        let mut captures = [(0, 0); MAX_PARAMS];
        let found = tree.find(path, &mut captures);
        (found != NONE).then(|| {
            let values = captures
                .iter()
                .take_while(|(start, end)| end > start)
                .map(|&(start, end)| path[start as usize..end as usize].to_owned())
                .collect();
            (found, values)
        })
    }

    #[test]
    fn priority_static_then_affixed_then_param_then_catch_all() {
        let tree = tree(&[
            "/a/logo.png",
            "/a/{name}.png",
            "/a/{name}",
            "/b/{*rest}",
            "/b/index",
        ]);
        assert_eq!(find(&tree, "/a/logo.png"), Some((0, vec![])));
        assert_eq!(find(&tree, "/a/x.png"), Some((1, vec!["x".into()])));
        assert_eq!(find(&tree, "/a/.png"), Some((2, vec![".png".into()])));
        assert_eq!(find(&tree, "/a/x.jpg"), Some((2, vec!["x.jpg".into()])));
        assert_eq!(find(&tree, "/b/index"), Some((4, vec![])));
        assert_eq!(find(&tree, "/b/index/x"), Some((3, vec!["index/x".into()])));
        assert_eq!(find(&tree, "/b/"), None);
        assert_eq!(find(&tree, "/a/"), None);
        assert_eq!(find(&tree, "a/x"), None);
        assert_eq!(find(&tree, ""), None);
    }

    #[test]
    fn backtracks_out_of_a_failed_static_or_suffix_branch() {
        let tree = tree(&[
            "/u/me/posts/latest",
            "/u/{id}/posts",
            "/f/{x}.png/a",
            "/f/{x}/b",
        ]);
        assert_eq!(find(&tree, "/u/me/posts"), Some((1, vec!["me".into()])));
        // matchit stops at the first suffix that fits and answers 404 here.
        assert_eq!(find(&tree, "/f/y.png/b"), Some((3, vec!["y.png".into()])));
        assert_eq!(find(&tree, "/f/y.png/a"), Some((2, vec!["y".into()])));
    }

    #[test]
    fn whole_static_paths_answer_as_the_walk_would() {
        let long = "/a/b/c/d/e/f/g/h/a-long-segment-name";
        let tree = tree(&["/", "/a/{x}", "/a/b", "/a/b/", "/{{lit}}/c", long]);
        assert_eq!(find(&tree, "/"), Some((0, vec![])));
        assert_eq!(find(&tree, "/a/b"), Some((2, vec![])));
        assert_eq!(find(&tree, "/a/c"), Some((1, vec!["c".into()])));
        assert_eq!(find(&tree, "/a/b/"), Some((3, vec![])));
        assert_eq!(find(&tree, "/{lit}/c"), Some((4, vec![])));
        assert_eq!(find(&tree, long), Some((5, vec![])));
        assert_eq!(find(&tree, "/a/b/c/d/e/f/g/h/a-long-segment-namf"), None);
        assert_eq!(find(&tree, "/a/b/c/d/e/f/g/i/a-long-segment-name"), None);
        assert_eq!(find(&tree, "/a/"), None);
        // Refused templates leave no whole path behind.
        let mut tree = tree;
        assert!(tree.insert(&parse("/a/b").unwrap(), 9).is_err());
        assert_eq!(find(&tree, "/a/b"), Some((2, vec![])));
    }

    #[test]
    fn templates_are_checked() {
        assert!(parse("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{*h}").is_ok());
        assert!(parse("/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}").is_err());
        assert!(parse("/{a}b{c}").is_err());
        assert!(parse("/{*a}b").is_err());
        assert!(parse("/{a*}").is_err());
        assert!(parse("/{{a}}").is_ok());
        let mut tree = tree(&["/a/{x}", "/b/{x}.png"]);
        for refused in ["/a/{*r}", "/a/{y}", "/b/{*r}", "/b/p{x}"] {
            assert!(
                tree.insert(&parse(refused).unwrap(), 9).is_err(),
                "{refused}"
            );
        }
        // Refused inserts left nothing behind.
        assert_eq!(find(&tree, "/a/z"), Some((0, vec!["z".into()])));
        assert_eq!(find(&tree, "/b/pz"), None);
    }

    #[test]
    fn slash_search_and_compare() {
        let text = b"0123456789abcdef0123456789/bcdef";
        for start in 0..text.len() {
            let expected = text[start..].iter().position(|&b| b == b'/');
            assert_eq!(find_slash(&text[start..]), expected, "{start}");
            for end in start..=text.len() {
                let a = &text[start..end];
                assert!(same(a, a));
                if end > start {
                    assert!(!same(a, &text[start..end - 1]));
                }
                let mut b = a.to_vec();
                if let Some(last) = b.last_mut() {
                    *last ^= 1;
                    assert!(!same(a, &b));
                }
                if let Some(first) = b.first_mut() {
                    *first ^= 2;
                    assert!(!same(a, &b));
                }
            }
        }
        assert_eq!(find_slash(b"\xaf/"), Some(1));
        assert_eq!(find_slash("éé/é".as_bytes()), Some(4));
    }

    #[test]
    fn many_static_siblings_hash_apart() {
        let names: Vec<String> = (0..300).map(|i| format!("/s{i}x")).collect();
        let templates: Vec<&str> = names.iter().map(String::as_str).collect();
        let tree = tree(&templates);
        for (index, name) in names.iter().enumerate() {
            assert_eq!(find(&tree, name), Some((index as u32, vec![])));
        }
        assert_eq!(find(&tree, "/s300x"), None);
    }
}
