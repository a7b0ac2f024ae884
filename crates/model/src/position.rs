//! Line and column of every node of a YAML stream, keyed by field path.
//!
//! serde's YAML values carry no positions, so diagnostics found after
//! decoding (validation, cross references) would lose them. A second,
//! event-level pass over the text records where each path starts; lookups
//! fall back to the nearest ancestor, so an error about a missing field
//! points at the mapping that lacks it.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// A 1-based line and column.
pub type Pos = (usize, usize);

/// Positions of one YAML stream, per document.
#[derive(Debug, Default, Clone)]
pub struct PositionIndex {
    docs: Vec<HashMap<String, Pos>>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: ignored with its contents.
    Skip,
}

impl PositionIndex {
    /// Indexes `text`. A syntax error ends indexing there; the decoder
    /// reports the error itself.
    pub fn build(text: &str) -> PositionIndex {
        let mut docs: Vec<HashMap<String, Pos>> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = (span.start.line(), span.start.col() + 1);
            match event {
                Event::DocumentStart(_) => {
                    docs.push(HashMap::new());
                    stack.clear();
                }
                Event::Scalar(..)
                | Event::Alias(_)
                | Event::MappingStart(..)
                | Event::SequenceStart(..) => {
                    let Some(doc) = docs.last_mut() else { continue };
                    let is_container =
                        matches!(event, Event::MappingStart(..) | Event::SequenceStart(..));
                    let child = match stack.last_mut() {
                        None => Some(String::new()),
                        Some(Frame::Skip) => None,
                        Some(Frame::Map { path, key }) => match key.take() {
                            None => {
                                // This node is a key.
                                if let Event::Scalar(k, ..) = &event {
                                    let p = join(path, k);
                                    doc.entry(p).or_insert(pos);
                                    *key = Some(k.to_string());
                                } else {
                                    *key = Some("?".into());
                                    stack.push(Frame::Skip);
                                }
                                continue;
                            }
                            Some(k) => Some(join(path, &k)),
                        },
                        Some(Frame::Seq { path, next }) => {
                            let p = format!("{path}[{next}]");
                            *next += 1;
                            Some(p)
                        }
                    };
                    if let Some(c) = &child {
                        doc.entry(c.clone()).or_insert(pos);
                    }
                    if is_container {
                        stack.push(match (child, &event) {
                            (None, _) => Frame::Skip,
                            (Some(p), Event::MappingStart(..)) => Frame::Map { path: p, key: None },
                            (Some(p), _) => Frame::Seq { path: p, next: 0 },
                        });
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        PositionIndex { docs }
    }

    /// The position of `path` in document `doc`, or of its nearest ancestor.
    pub fn lookup(&self, doc: usize, path: &str) -> Option<Pos> {
        let map = self.docs.get(doc)?;
        let mut p = path;
        loop {
            if let Some(pos) = map.get(p) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(p);
        }
    }

    /// Number of documents seen.
    pub fn documents(&self) -> usize {
        self.docs.len()
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

fn parent(p: &str) -> &str {
    if p.ends_with(']')
        && let Some(i) = p.rfind('[')
    {
        return &p[..i];
    }
    match p.rfind('.') {
        Some(i) => &p[..i],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
apiVersion: v
kind: Router
spec:
  resources:
    - kind: A
      spec:
        candidates:
          - name: x
            gateway: 1.2.3.4
---
kind: B
";

    #[test]
    fn positions_are_one_based_and_follow_paths() {
        let idx = PositionIndex::build(TEXT);
        assert_eq!(idx.documents(), 2);
        assert_eq!(idx.lookup(0, "kind"), Some((2, 1)));
        assert_eq!(idx.lookup(0, "spec.resources[0]"), Some((5, 7)));
        assert_eq!(
            idx.lookup(0, "spec.resources[0].spec.candidates[0].gateway"),
            Some((9, 13))
        );
        // Missing leaf falls back to the nearest ancestor.
        assert_eq!(
            idx.lookup(0, "spec.resources[0].spec.candidates[0].weight"),
            Some((8, 13))
        );
        assert_eq!(idx.lookup(1, "kind"), Some((11, 1)));
    }
}
