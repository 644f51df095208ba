//! Element types, static tensor types (the `f32[3,4]` of the text IR), and the per-function
//! table that interns them: a value's type is a 4-byte `TypeId`, not a heap-allocated shape.

use std::fmt;
use std::sync::LazyLock;

use smallvec::SmallVec;

use crate::intern::{Id, Table};

/// The element types of the IR. Only `F32` and `F64` carry derivatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    I32,
    Bool,
}

impl DType {
    /// All dtypes, in the order the text IR lists them.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::Bool];

    /// The keyword of the text IR (`f32`, `f64`, `i32`, `bool`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    /// Parses a dtype keyword.
    pub fn from_name(name: &str) -> Option<DType> {
        match name.as_bytes() {
            b"f32" => Some(DType::F32),
            b"f64" => Some(DType::F64),
            b"i32" => Some(DType::I32),
            b"bool" => Some(DType::Bool),
            _ => None,
        }
    }

    /// True for the float dtypes, the only ones with tangents.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// True for the dtypes arithmetic is defined on (floats and i32).
    pub fn is_numeric(self) -> bool {
        !matches!(self, DType::Bool)
    }

    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 => 8,
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A static shape. Ranks up to 4 live inline, so building and cloning a type does not
/// allocate in the common case.
pub type Shape = SmallVec<[usize; 4]>;

/// The largest number of elements a type may have (2^40), counting only its non-zero axes:
/// a zero-size tensor must still have a shape that can be indexed.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// A static tensor type: a dtype and a shape (empty shape = scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Type {
    pub dtype: DType,
    pub shape: Shape,
}

impl Type {
    pub fn new(dtype: DType, shape: impl AsRef<[usize]>) -> Type {
        Type {
            dtype,
            shape: Shape::from_slice(shape.as_ref()),
        }
    }

    pub fn scalar(dtype: DType) -> Type {
        Type {
            dtype,
            shape: Shape::new(),
        }
    }

    /// The rank-0 type of `dtype`, as a reference that lives forever (literal operands).
    pub fn scalar_ref(dtype: DType) -> &'static Type {
        static SCALARS: LazyLock<[Type; 4]> = LazyLock::new(|| DType::ALL.map(Type::scalar));
        match dtype {
            DType::F32 => &SCALARS[0],
            DType::F64 => &SCALARS[1],
            DType::I32 => &SCALARS[2],
            DType::Bool => &SCALARS[3],
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (1 for a scalar), saturating at `usize::MAX`.
    pub fn num_elements(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    /// Bytes of a dense buffer of this type, saturating at `usize::MAX`.
    pub fn size_bytes(&self) -> usize {
        self.num_elements().saturating_mul(self.dtype.size_bytes())
    }

    /// True when the product of the non-zero axes is at most `MAX_ELEMENTS`.
    pub fn fits(shape: &[usize]) -> bool {
        shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_some_and(|n| n <= MAX_ELEMENTS)
    }

    /// The same shape with another dtype.
    pub fn with_dtype(&self, dtype: DType) -> Type {
        Type {
            dtype,
            shape: self.shape.clone(),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// A type interned in a function's type table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(u32);

impl Id for TypeId {
    fn from_index(i: usize) -> TypeId {
        TypeId(i as u32)
    }
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// The distinct types of one function.
pub type TypeTable = Table<TypeId, Type>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_gives_one_id_per_distinct_type() {
        let mut t = TypeTable::default();
        let a = t.intern(&Type::new(DType::F32, [3]));
        let b = t.intern(&Type::new(DType::F64, [3]));
        let c = t.intern(&Type::new(DType::F32, [3]));
        assert_eq!(a, c);
        assert_ne!(a, b);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b).to_string(), "f64[3]");
    }

    #[test]
    fn dtype_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_name("f16"), None);
    }

    #[test]
    fn zero_size_types_must_still_be_indexable() {
        assert!(Type::fits(&[0, 4, 5]));
        assert!(!Type::fits(&[0, 4294967295, 4294967295]));
        assert!(Type::fits(&[1 << 20, 1 << 20]));
        assert!(!Type::fits(&[1 << 21, 1 << 20]));
    }
}
