//! The descriptor index: files by name, symbols and extensions to the file defining them.
//! Pure data, built from encoded `FileDescriptorSet`s.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use buffa::Message as _;
use buffa_descriptor::generated::descriptor::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet,
};

/// Why descriptors could not be added to a [`Reflection`](crate::Reflection).
#[derive(Debug)]
#[non_exhaustive]
pub enum ReflectionError {
    /// The bytes are not an encoded `google.protobuf.FileDescriptorSet`.
    Decode(buffa::DecodeError),
    /// A file in the set has no name.
    UnnamedFile,
    /// Two different files define the same symbol.
    DuplicateSymbol {
        /// The fully-qualified symbol.
        symbol: String,
        /// The file added first.
        first: String,
        /// The file that defines it again.
        second: String,
    },
}

impl fmt::Display for ReflectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "decoding a FileDescriptorSet: {e}"),
            Self::UnnamedFile => f.write_str("the FileDescriptorSet holds a file without a name"),
            Self::DuplicateSymbol {
                symbol,
                first,
                second,
            } => write!(
                f,
                "symbol {symbol} is defined in both {first:?} and {second:?}"
            ),
        }
    }
}

impl std::error::Error for ReflectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// What a symbol names; only the distinction between messages and the rest matters to the
/// protocol (extension numbers are asked of message types), the rest aids debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Package,
    Message,
    Enum,
    EnumValue,
    Field,
    Oneof,
    Extension,
    Service,
    Method,
}

#[derive(Debug, Clone)]
struct File {
    name: String,
    encoded: Vec<u8>,
    dependencies: Vec<String>,
}

/// Files, symbols and extensions of every added descriptor set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    files: Vec<File>,
    by_name: HashMap<String, usize>,
    symbols: HashMap<String, (usize, Kind)>,
    extensions: HashMap<(String, i32), usize>,
    extension_numbers: HashMap<String, BTreeSet<i32>>,
    services: Vec<String>,
}

/// Strips the leading dot of a fully-qualified reference (`.pkg.Msg` -> `pkg.Msg`).
pub(crate) fn unqualify(name: &str) -> &str {
    name.strip_prefix('.').unwrap_or(name)
}

fn join(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

impl Index {
    /// Adds every file of an encoded `FileDescriptorSet`. A file whose name is already indexed
    /// is skipped (the first one added wins).
    pub(crate) fn add_set(&mut self, bytes: &[u8]) -> Result<(), ReflectionError> {
        let set = FileDescriptorSet::decode_from_slice(bytes).map_err(ReflectionError::Decode)?;
        for file in &set.file {
            self.add_file(file)?;
        }
        Ok(())
    }

    fn add_file(&mut self, file: &FileDescriptorProto) -> Result<(), ReflectionError> {
        let name = file.name.clone().ok_or(ReflectionError::UnnamedFile)?;
        if self.by_name.contains_key(&name) {
            return Ok(());
        }
        let at = self.files.len();
        let mut symbols = Vec::new();
        let mut extensions = Vec::new();
        let package = file.package.clone().unwrap_or_default();
        if !package.is_empty() {
            symbols.push((package.clone(), Kind::Package));
        }
        for message in &file.message_type {
            collect_message(&package, message, &mut symbols, &mut extensions);
        }
        for e in &file.enum_type {
            collect_enum(&package, e, &mut symbols);
        }
        for ext in &file.extension {
            collect_extension(&package, ext, &mut symbols, &mut extensions);
        }
        let mut services = Vec::new();
        for service in &file.service {
            let full = join(&package, service.name.as_deref().unwrap_or_default());
            for method in &service.method {
                let method = join(&full, method.name.as_deref().unwrap_or_default());
                symbols.push((method, Kind::Method));
            }
            symbols.push((full.clone(), Kind::Service));
            services.push(full);
        }

        // Check every symbol before changing anything, so a failed add leaves the index whole.
        let mut seen = HashSet::new();
        for (symbol, kind) in &symbols {
            let clash = match self.symbols.get(symbol) {
                Some((_, Kind::Package)) if *kind == Kind::Package => None,
                Some((other, _)) => Some(self.files[*other].name.clone()),
                None if !seen.insert(symbol.as_str()) && *kind != Kind::Package => {
                    Some(name.clone())
                }
                None => None,
            };
            if let Some(first) = clash {
                return Err(ReflectionError::DuplicateSymbol {
                    symbol: symbol.clone(),
                    first,
                    second: name,
                });
            }
        }

        for (symbol, kind) in symbols {
            self.symbols.entry(symbol).or_insert((at, kind));
        }
        for (extendee, number) in extensions {
            self.extension_numbers
                .entry(extendee.clone())
                .or_default()
                .insert(number);
            self.extensions.entry((extendee, number)).or_insert(at);
        }
        self.services.extend(services);
        self.by_name.insert(name.clone(), at);
        self.files.push(File {
            name,
            encoded: file.encode_to_vec(),
            dependencies: file.dependency.clone(),
        });
        Ok(())
    }

    /// Every service of every added file, in the order added.
    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }

    /// The file named `name`.
    pub(crate) fn file_by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The file defining `symbol` (with or without a leading dot), and what it names.
    pub(crate) fn symbol(&self, symbol: &str) -> Option<(usize, Kind)> {
        self.symbols.get(unqualify(symbol)).copied()
    }

    /// The file defining extension `number` of `extendee`.
    pub(crate) fn extension(&self, extendee: &str, number: i32) -> Option<usize> {
        self.extensions
            .get(&(unqualify(extendee).to_string(), number))
            .copied()
    }

    /// The known extension numbers of message `extendee`, ascending; `None` when `extendee`
    /// is not a known message.
    pub(crate) fn extension_numbers(&self, extendee: &str) -> Option<Vec<i32>> {
        let extendee = unqualify(extendee);
        match self.symbols.get(extendee) {
            Some((_, Kind::Message)) => Some(
                self.extension_numbers
                    .get(extendee)
                    .map(|n| n.iter().copied().collect())
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }

    /// The encoded file `at`, followed by every file it depends on, directly or not, each
    /// once, nearest first. Dependencies missing from the index are left out.
    pub(crate) fn with_dependencies(&self, at: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut visited = HashSet::from([at]);
        let mut queue = VecDeque::from([at]);
        while let Some(i) = queue.pop_front() {
            let file = &self.files[i];
            out.push(file.encoded.clone());
            for dep in &file.dependencies {
                if let Some(d) = self.file_by_name(dep)
                    && visited.insert(d)
                {
                    queue.push_back(d);
                }
            }
        }
        out
    }
}

fn collect_message(
    scope: &str,
    message: &DescriptorProto,
    symbols: &mut Vec<(String, Kind)>,
    extensions: &mut Vec<(String, i32)>,
) {
    let full = join(scope, message.name.as_deref().unwrap_or_default());
    for field in &message.field {
        let name = join(&full, field.name.as_deref().unwrap_or_default());
        symbols.push((name, Kind::Field));
    }
    for oneof in &message.oneof_decl {
        let name = join(&full, oneof.name.as_deref().unwrap_or_default());
        symbols.push((name, Kind::Oneof));
    }
    for nested in &message.nested_type {
        collect_message(&full, nested, symbols, extensions);
    }
    for e in &message.enum_type {
        collect_enum(&full, e, symbols);
    }
    for ext in &message.extension {
        collect_extension(&full, ext, symbols, extensions);
    }
    symbols.push((full, Kind::Message));
}

fn collect_enum(scope: &str, e: &EnumDescriptorProto, symbols: &mut Vec<(String, Kind)>) {
    // Enum values are scoped like C++ enumerators: siblings of their enum, not children.
    for value in &e.value {
        let name = join(scope, value.name.as_deref().unwrap_or_default());
        symbols.push((name, Kind::EnumValue));
    }
    symbols.push((
        join(scope, e.name.as_deref().unwrap_or_default()),
        Kind::Enum,
    ));
}

fn collect_extension(
    scope: &str,
    ext: &FieldDescriptorProto,
    symbols: &mut Vec<(String, Kind)>,
    extensions: &mut Vec<(String, i32)>,
) {
    symbols.push((
        join(scope, ext.name.as_deref().unwrap_or_default()),
        Kind::Extension,
    ));
    if let (Some(extendee), Some(number)) = (&ext.extendee, ext.number) {
        extensions.push((unqualify(extendee).to_string(), number));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use buffa_descriptor::generated::descriptor::{
        EnumValueDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto,
    };

    fn named<T: Default>(f: impl FnOnce(&mut T)) -> T {
        let mut t = T::default();
        f(&mut t);
        t
    }

    fn sample() -> FileDescriptorProto {
        named(|f: &mut FileDescriptorProto| {
            f.name = Some("a/b.proto".into());
            f.package = Some("a.b".into());
            f.dependency = vec!["a/dep.proto".into(), "missing.proto".into()];
            f.message_type = vec![named(|m: &mut DescriptorProto| {
                m.name = Some("Outer".into());
                m.field = vec![named(|x: &mut FieldDescriptorProto| {
                    x.name = Some("id".into());
                })];
                m.nested_type = vec![named(|n: &mut DescriptorProto| {
                    n.name = Some("Inner".into());
                })];
                m.enum_type = vec![named(|e: &mut EnumDescriptorProto| {
                    e.name = Some("Color".into());
                    e.value = vec![named(|v: &mut EnumValueDescriptorProto| {
                        v.name = Some("RED".into());
                    })];
                })];
                m.extension = vec![named(|x: &mut FieldDescriptorProto| {
                    x.name = Some("scoped".into());
                    x.extendee = Some(".a.dep.Base".into());
                    x.number = Some(101);
                })];
            })];
            f.extension = vec![named(|x: &mut FieldDescriptorProto| {
                x.name = Some("top".into());
                x.extendee = Some(".a.dep.Base".into());
                x.number = Some(100);
            })];
            f.service = vec![named(|s: &mut ServiceDescriptorProto| {
                s.name = Some("Svc".into());
                s.method = vec![named(|m: &mut MethodDescriptorProto| {
                    m.name = Some("Do".into());
                })];
            })];
        })
    }

    fn dep() -> FileDescriptorProto {
        named(|f: &mut FileDescriptorProto| {
            f.name = Some("a/dep.proto".into());
            f.package = Some("a.dep".into());
            f.message_type = vec![named(|m: &mut DescriptorProto| {
                m.name = Some("Base".into());
            })];
        })
    }

    fn set(files: Vec<FileDescriptorProto>) -> Vec<u8> {
        named(|s: &mut FileDescriptorSet| s.file = files).encode_to_vec()
    }

    #[test]
    fn indexes_every_kind_of_symbol() {
        let mut index = Index::default();
        index.add_set(&set(vec![dep(), sample()])).unwrap();
        let at = index.file_by_name("a/b.proto").unwrap();
        for (symbol, kind) in [
            ("a.b", Kind::Package),
            ("a.b.Outer", Kind::Message),
            (".a.b.Outer", Kind::Message),
            ("a.b.Outer.id", Kind::Field),
            ("a.b.Outer.Inner", Kind::Message),
            ("a.b.Outer.Color", Kind::Enum),
            ("a.b.Outer.RED", Kind::EnumValue),
            ("a.b.Outer.scoped", Kind::Extension),
            ("a.b.top", Kind::Extension),
            ("a.b.Svc", Kind::Service),
            ("a.b.Svc.Do", Kind::Method),
        ] {
            assert_eq!(index.symbol(symbol), Some((at, kind)), "{symbol}");
        }
        assert_eq!(index.symbol("a.b.Nope"), None);
        assert_eq!(index.extension(".a.dep.Base", 100), Some(at));
        assert_eq!(index.extension("a.dep.Base", 101), Some(at));
        assert_eq!(index.extension("a.dep.Base", 102), None);
        assert_eq!(index.extension_numbers("a.dep.Base"), Some(vec![100, 101]));
        assert_eq!(index.extension_numbers("a.b.Outer"), Some(vec![]));
        assert_eq!(index.extension_numbers("a.b.Svc"), None);
        assert_eq!(index.services(), ["a.b.Svc"]);
    }

    #[test]
    fn answers_a_file_with_its_dependencies_first_file_first() {
        let mut index = Index::default();
        index.add_set(&set(vec![dep(), sample()])).unwrap();
        let files = index.with_dependencies(index.file_by_name("a/b.proto").unwrap());
        let names: Vec<_> = files
            .iter()
            .map(|b| {
                FileDescriptorProto::decode_from_slice(b)
                    .unwrap()
                    .name
                    .unwrap()
            })
            .collect();
        assert_eq!(names, ["a/b.proto", "a/dep.proto"]);
    }

    #[test]
    fn skips_repeated_files_and_rejects_clashing_symbols() {
        let mut index = Index::default();
        index.add_set(&set(vec![dep()])).unwrap();
        index.add_set(&set(vec![dep()])).unwrap();
        let mut other = dep();
        other.name = Some("other.proto".into());
        let err = index.add_set(&set(vec![other])).unwrap_err();
        assert!(
            matches!(&err, ReflectionError::DuplicateSymbol { symbol, .. } if symbol == "a.dep.Base"),
            "{err}"
        );
        assert!(index.file_by_name("other.proto").is_none());
        assert!(matches!(
            index.add_set(b"\xff\xff").unwrap_err(),
            ReflectionError::Decode(_)
        ));
        assert!(matches!(
            index
                .add_set(&set(vec![FileDescriptorProto::default()]))
                .unwrap_err(),
            ReflectionError::UnnamedFile
        ));
    }
}
