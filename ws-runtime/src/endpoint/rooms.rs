//! Rooms: named groups of clients, kept beside the registry under its lock, so that a delivery
//! to a room sees a membership consistent with the open clients, and a client leaves every
//! room in the same step as it unregisters.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use crate::cluster::{ClientId, IdHasher, Room};

type IdSet = HashSet<ClientId, BuildHasherDefault<IdHasher>>;

/// Who is in which room, both ways: a room's members for deliveries, a client's rooms for
/// leaving them all when it closes.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    members: HashMap<Room, IdSet>,
    of: HashMap<ClientId, Vec<Room>, BuildHasherDefault<IdHasher>>,
}

impl Rooms {
    /// Adds `id` to `room`; whether it was not in it yet.
    pub(super) fn join(&mut self, id: ClientId, room: Room) -> bool {
        let members = self.members.entry(room.clone()).or_default();
        if !members.insert(id) {
            return false;
        }
        self.of.entry(id).or_default().push(room);
        true
    }

    /// Removes `id` from `room`; whether it was in it.
    pub(super) fn leave(&mut self, id: ClientId, room: &str) -> bool {
        let Some(members) = self.members.get_mut(room) else {
            return false;
        };
        if !members.remove(&id) {
            return false;
        }
        if members.is_empty() {
            self.members.remove(room);
        }
        if let Some(rooms) = self.of.get_mut(&id) {
            rooms.retain(|r| r.as_str() != room);
            if rooms.is_empty() {
                self.of.remove(&id);
            }
        }
        true
    }

    /// Removes `id` from every room it is in; `emptied` is called with each room it was the
    /// last member of.
    pub(super) fn leave_all(&mut self, id: ClientId, mut emptied: impl FnMut(&Room)) {
        for room in self.of.remove(&id).unwrap_or_default() {
            if let Some(members) = self.members.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    self.members.remove(&room);
                    emptied(&room);
                }
            }
        }
    }

    /// The rooms `id` is in, in the order it joined them.
    pub(super) fn of(&self, id: ClientId) -> &[Room] {
        self.of.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The members of `room`, in no order.
    pub(super) fn members(&self, room: &str) -> impl Iterator<Item = ClientId> + '_ {
        self.members.get(room).into_iter().flatten().copied()
    }

    /// How many clients are in `room`.
    pub(super) fn len(&self, room: &str) -> usize {
        self.members.get(room).map_or(0, HashSet::len)
    }

    /// Every room with at least one member, in no order.
    pub(super) fn names(&self) -> impl Iterator<Item = &Room> + '_ {
        self.members.keys()
    }

    /// The members of any of `rooms`, each once, except `except`, in id order.
    pub(super) fn union(&self, rooms: &[Room], except: &[ClientId]) -> Vec<ClientId> {
        let mut ids: Vec<ClientId> = rooms
            .iter()
            .flat_map(|room| self.members(room.as_str()))
            .filter(|id| !except.contains(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NODE: std::sync::LazyLock<crate::cluster::NodeId> =
        std::sync::LazyLock::new(crate::cluster::NodeId::random);

    fn id(n: u64) -> ClientId {
        ClientId::new(*NODE, n)
    }

    #[test]
    fn join_leave_and_queries() {
        let mut rooms = Rooms::default();
        assert!(rooms.join(id(1), "a".into()));
        assert!(!rooms.join(id(1), "a".into()), "joined once");
        assert!(rooms.join(id(1), "b".into()));
        assert!(rooms.join(id(2), "a".into()));
        assert_eq!(rooms.len("a"), 2);
        assert_eq!(rooms.of(id(1)), [Room::from("a"), Room::from("b")]);
        assert!(rooms.leave(id(1), "a"));
        assert!(!rooms.leave(id(1), "a"), "left once");
        assert!(!rooms.leave(id(3), "a"), "never joined");
        assert_eq!(rooms.of(id(1)), [Room::from("b")]);
        assert_eq!(rooms.members("a").collect::<Vec<_>>(), [id(2)]);
        assert!(rooms.leave(id(2), "a"));
        assert_eq!(rooms.len("a"), 0);
        assert!(
            rooms.names().all(|room| room.as_str() != "a"),
            "an empty room is removed"
        );
    }

    #[test]
    fn leave_all_empties_every_room_of_a_client() {
        let mut rooms = Rooms::default();
        for room in ["a", "b", "c"] {
            rooms.join(id(7), room.into());
        }
        rooms.join(id(8), "b".into());
        rooms.leave_all(id(7), |_| {});
        assert!(rooms.of(id(7)).is_empty());
        assert_eq!(rooms.names().collect::<Vec<_>>(), [&Room::from("b")]);
        assert_eq!(rooms.members("b").collect::<Vec<_>>(), [id(8)]);
        rooms.leave_all(id(9), |_| panic!("in no room"));
    }

    #[test]
    fn a_union_has_each_member_once_and_leaves_out_the_excepted() {
        let mut rooms = Rooms::default();
        for (n, room) in [(1, "a"), (2, "a"), (2, "b"), (3, "b"), (4, "c")] {
            rooms.join(id(n), room.into());
        }
        let a_b = [Room::from("a"), Room::from("b")];
        assert_eq!(rooms.union(&a_b, &[]), [id(1), id(2), id(3)]);
        assert_eq!(rooms.union(&a_b, &[id(2)]), [id(1), id(3)]);
        assert_eq!(rooms.union(&[Room::from("nowhere")], &[]), []);
        assert_eq!(rooms.union(&[], &[]), []);
    }
}
