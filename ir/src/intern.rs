//! Interning tables: each distinct value stored once per function and named by a dense `u32`
//! id. A function's types and primitives (with their attributes) live in such tables, so an
//! equation is a few small integers rather than a tree of heap allocations.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;

use indexmap::IndexSet;
use rustc_hash::FxBuildHasher;

/// A typed index into a `Table`.
pub trait Id: Copy {
    fn from_index(i: usize) -> Self;
    fn index(self) -> usize;
}

/// Values of type `T`, each stored once, named by ids of type `I`. Interning is one hash
/// lookup; ids are dense and stable (nothing is ever removed).
#[derive(Clone)]
pub struct Table<I, T> {
    set: IndexSet<T, FxBuildHasher>,
    _id: PhantomData<I>,
}

impl<I, T> Default for Table<I, T> {
    fn default() -> Self {
        Table {
            set: IndexSet::default(),
            _id: PhantomData,
        }
    }
}

impl<I: Id, T: Hash + Eq + Clone> Table<I, T> {
    /// The id of `x`, cloning it into the table only if it is new.
    pub fn intern(&mut self, x: &T) -> I {
        match self.set.get_index_of(x) {
            Some(i) => I::from_index(i),
            None => I::from_index(self.set.insert_full(x.clone()).0),
        }
    }

    /// The id of `x`, taking ownership.
    pub fn intern_owned(&mut self, x: T) -> I {
        I::from_index(self.set.insert_full(x).0)
    }

    pub fn get(&self, id: I) -> &T {
        &self.set[id.index()]
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl<I, T: fmt::Debug> fmt::Debug for Table<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.set.iter()).finish()
    }
}
