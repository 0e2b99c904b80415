//! Room history in a cluster: every node, the sender's included, delivers a recorded message
//! from the cluster's feed, after the store gave it its position, so that a room's members
//! on every node get its messages in offset order. Each room with members here has a
//! [`Feed`]: the last position delivered (its cursor), frames held while a gap is healed
//! from the store, and the clients joining with a position, whose frames are buffered until
//! their replay is out.
//!
//! Lock order: the map of feeds, then one feed, then the registry.

use super::histories::{Feed, Frame, Histories, JoinError, Place, PublishError, Then, lock};
use super::{Delivery, Endpoint, Remote, SendError};
use crate::cluster::wire;
use crate::cluster::{Append, ClientId, Position, Room, Topic};
use crate::history::{Recovery, decide};
use crate::message::{Close, Message};

/// Attempts to read the store while healing before the room's members are told the history
/// is lost.
const HEAL_ATTEMPTS: u32 = 3;

impl Endpoint {
    /// The histories of a clustered socket, if `room` keeps one.
    fn clustered_history(&self, room: &str) -> Option<&Histories> {
        self.registry
            .history
            .as_ref()
            .filter(|histories| histories.clustered && histories.settings.keeps(room))
    }

    /// Forgets a room's feed as this node's last member there leaves: when it has members
    /// again, it starts from the next message it hears.
    pub(super) fn feed_emptied(&self, room: &Room) {
        if let Some(histories) = self.registry.history.as_ref().filter(|h| h.clustered) {
            lock(&histories.feeds).remove(room.as_str());
        }
    }

    /// Hands a recorded message to the store, which records it and publishes it to every
    /// node with members in the room (this one included). Nothing is delivered here yet.
    pub(super) fn append(
        &self,
        room: &Room,
        message: Message,
        except: &[ClientId],
    ) -> Result<crate::cluster::StoreFuture<'static, Position>, PublishError> {
        let (Some(histories), Some(link)) = (self.clustered_history(room.as_str()), self.link())
        else {
            return Err(PublishError::NoHistory(room.clone()));
        };
        let parts = wire::recorded(link.node(), room, except, &message);
        let append = Append {
            room: room.clone(),
            message,
            head: parts.head,
            tail: parts.tail,
            keep: histories.settings.get_keep(),
            ttl: histories.settings.get_ttl(),
        };
        let appended = link
            .append(append)
            .map_err(|_| PublishError::Unavailable(room.clone()))?;
        histories.count_appended();
        Ok(appended)
    }

    /// A delivery to rooms of which some keep history, in a cluster: each of those gets the
    /// message through the store; the others as any delivery.
    pub(super) fn deliver_clustered(
        &self,
        rooms: &[Room],
        except: &[ClientId],
        message: &Message,
    ) -> Delivery {
        let mut delivery = Delivery::default();
        let mut plain = Vec::new();
        let mut sent = true;
        for room in rooms {
            if self.clustered_history(room.as_str()).is_none() {
                plain.push(room.clone());
                continue;
            }
            sent &= self.append(room, message.clone(), except).is_ok();
        }
        if !plain.is_empty() {
            let to = super::Target::Rooms(&plain, except);
            self.push(to, self.frame(message.clone()), |id, result| {
                delivery.count(id, result.is_ok());
            });
            self.publish_remote(to, message, &mut delivery);
        }
        delivery.remote = match (sent, delivery.remote) {
            (false, _) | (true, Remote::Unsent) => Remote::Unsent,
            _ => Remote::Published,
        };
        delivery
    }

    /// A recorded message from the cluster's feed: delivered in offset order, held while a gap
    /// is healed.
    pub(super) fn receive_recorded(
        &self,
        room: &Room,
        position: Position,
        except: &[ClientId],
        message: Message,
    ) {
        let Some(histories) = self.clustered_history(room.as_str()) else {
            // A node whose rule keeps no history here (or none at all): the message still
            // reaches the members, as published.
            let frame = self.frame(message);
            self.push(
                super::Target::Rooms(std::slice::from_ref(room), except),
                frame,
                |_, _| {},
            );
            return;
        };
        let outages = self.link().map_or(0, super::remote::Link::outages);
        let feed = histories.feed(room);
        let mut feed = lock(&feed);
        let frame = Frame {
            position,
            except: except.to_vec(),
            message,
        };
        if feed.healing {
            feed.held.push(frame);
            return;
        }
        match feed.place(&position, outages) {
            Place::Next => self.deliver_frame(histories, &mut feed, room, frame, outages),
            Place::Old => {}
            Place::Gap => {
                feed.held.push(frame);
                feed.healing = true;
                drop(feed);
                self.spawn_heal(room.clone());
            }
        }
    }

    /// Delivers one frame to the room's members here and moves the cursor.
    fn deliver_frame(
        &self,
        histories: &Histories,
        feed: &mut Feed,
        room: &Room,
        frame: Frame,
        outages: u64,
    ) {
        let Frame {
            position,
            except,
            message,
        } = frame;
        feed.cursor = Some(position);
        feed.outages_at = outages;
        let Some(formatted) = histories.format(room, &position, message) else {
            return;
        };
        let frame = self.frame(formatted);
        let clients = self.registry.read();
        for id in clients.rooms.members(room.as_str()) {
            if except.contains(&id) || feed.floors.get(&id).is_some_and(|f| *f >= position.offset) {
                continue;
            }
            if let Some(buffer) = feed.recovering.get_mut(&id) {
                buffer.push((position.offset, frame.clone()));
            } else if let Some(client) = clients.map.get(&id) {
                let _ = client.push_recorded(frame.clone());
            }
        }
        // Once the cursor reaches a floor, it is no longer needed.
        feed.floors.retain(|_, floor| *floor > position.offset);
    }

    /// Reads back what every room's feed may have missed while the link was down.
    pub(super) fn check_feeds(&self) {
        let Some(histories) = self.registry.history.as_ref().filter(|h| h.clustered) else {
            return;
        };
        let rooms: Vec<Room> = lock(&histories.feeds).keys().cloned().collect();
        for room in rooms {
            let feed = histories.feed(&room);
            let mut feed = lock(&feed);
            if feed.cursor.is_some() && !feed.healing {
                feed.healing = true;
                drop(feed);
                self.spawn_heal(room);
            }
        }
    }

    fn spawn_heal(&self, room: Room) {
        let endpoint = self.downgrade();
        tokio::spawn(async move {
            if let Some(endpoint) = endpoint.upgrade() {
                endpoint.heal(&room).await;
            }
        });
    }

    /// Fills a room's gap from the store, then delivers what was held; when the store no
    /// longer has what is missing, this node's members of the room are closed with 1012, so
    /// that their clients come back and learn honestly that they did not recover.
    async fn heal(&self, room: &Room) {
        let (Some(histories), Some(link)) = (self.clustered_history(room.as_str()), self.link())
        else {
            return;
        };
        let Some(store) = link.store() else { return };
        let settings = &histories.settings;
        let feed_lock = histories.feed(room);
        let mut attempts = 0;
        let mut filled_from_store = 0;
        loop {
            let cursor = lock(&feed_lock).cursor;
            let after = cursor.map_or(0, |cursor| cursor.offset);
            let read = store
                .read(room, after, settings.get_keep(), settings.get_ttl())
                .await;
            let outages = link.outages();
            let mut feed = lock(&feed_lock);
            let read = match read {
                Ok(read) => read,
                Err(error) if attempts + 1 < HEAL_ATTEMPTS => {
                    attempts += 1;
                    tracing::debug!(%room, %error, "reading the room's history to fill a gap failed; trying again");
                    drop(feed);
                    tokio::time::sleep(link_retry()).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%room, %error, "the room's history could not be read to fill a gap");
                    self.history_lost(histories, &mut feed, room, None);
                    return;
                }
            };
            let filled = match feed.cursor {
                Some(cursor) if cursor.epoch == read.top.epoch => {
                    let mut next = cursor.offset + 1;
                    let mut filled = true;
                    for (offset, message) in read.entries {
                        if offset < next {
                            continue;
                        }
                        if offset > next {
                            filled = false;
                            break;
                        }
                        let position = Position::new(offset, read.top.epoch);
                        let frame = Frame {
                            position,
                            except: Vec::new(),
                            message,
                        };
                        self.deliver_frame(histories, &mut feed, room, frame, outages);
                        filled_from_store += 1;
                        next += 1;
                    }
                    filled && next > read.top.offset
                }
                // No cursor: nothing delivered yet, so nothing to fill.
                None => true,
                Some(_) => false,
            };
            if !filled {
                self.history_lost(histories, &mut feed, room, Some(read.top));
                return;
            }
            // The held frames, in order; a new gap among them is healed again.
            let held = std::mem::take(&mut feed.held);
            let mut rest = held.into_iter();
            let mut gap = false;
            for frame in rest.by_ref() {
                match feed.place(&frame.position, outages) {
                    Place::Next => self.deliver_frame(histories, &mut feed, room, frame, outages),
                    Place::Old => {}
                    Place::Gap => {
                        feed.held.push(frame);
                        gap = true;
                        break;
                    }
                }
            }
            feed.held.extend(rest);
            if !gap {
                feed.healing = false;
                if filled_from_store > 0 {
                    histories.count_healed();
                }
                return;
            }
            attempts = 0;
        }
    }

    /// The history between the cursor and what was held is gone: this node's members of the
    /// room are closed with 1012, and the feed goes on from the newest position known.
    fn history_lost(
        &self,
        histories: &Histories,
        feed: &mut Feed,
        room: &Room,
        top: Option<Position>,
    ) {
        let newest = feed
            .held
            .iter()
            .map(|frame| frame.position)
            .chain(top)
            .max_by_key(|position| position.offset);
        feed.cursor = newest.or(feed.cursor);
        feed.held.clear();
        feed.healing = false;
        feed.floors.clear();
        let clients = self.registry.read();
        let members: Vec<ClientId> = clients.rooms.members(room.as_str()).collect();
        tracing::warn!(%room, members = members.len(), "messages of the room were lost between the history and this node; closing its members here with 1012 so they come back");
        clients.close_each(&members, Close::SERVICE_RESTART, "History lost");
        histories.count_lost(members.len(), &self.registry.meter);
    }

    /// `join_since` in a cluster: joins marked as recovering (frames buffered), waits for the
    /// room's subscription, reads the store, then queues the replay, the reply and the
    /// buffered frames, each offset once.
    pub(super) async fn join_clustered(
        &self,
        id: ClientId,
        room: &Room,
        since: Option<Position>,
        then: Option<Then<'_>>,
    ) -> Result<Recovery, JoinError> {
        let (Some(histories), Some(link)) = (self.clustered_history(room.as_str()), self.link())
        else {
            return Err(JoinError::NoHistory(room.clone()));
        };
        let Some(store) = link.store() else {
            return Err(JoinError::NoHistory(room.clone()));
        };
        let settings = &histories.settings;
        let feed_lock = histories.feed(room);
        let joined = {
            let mut feed = lock(&feed_lock);
            let mut clients = self.registry.write();
            let open = clients
                .map
                .get(&id)
                .filter(|client| id.node() == self.registry.node && !client.is_closing());
            if open.is_none() {
                return Err(SendError::UnknownClient(id).into());
            }
            feed.recovering.insert(id, Vec::new());
            feed.floors.remove(&id);
            self.join_locked(&mut clients, id, room)
        };
        if joined {
            self.entered(room, id);
        }
        let undo = |error: JoinError| {
            lock(&feed_lock).recovering.remove(&id);
            self.leave_local(id, room.as_str());
            Err(error)
        };
        if !link.subscribed(&Topic::Room(room.clone())).await {
            return undo(JoinError::Unavailable(room.clone()));
        }
        let (after, limit) = match since {
            Some(since) => (since.offset, settings.get_keep()),
            None => (0, 0),
        };
        let read = match store.read(room, after, limit, settings.get_ttl()).await {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%room, %error, "the room's history could not be read for a join");
                return undo(JoinError::Unavailable(room.clone()));
            }
        };
        let top = read.top;
        let kept = read
            .entries
            .first()
            .zip(read.entries.last())
            .map(|((first, _), (last, _))| (*first, *last));
        let decision = decide(since.as_ref(), &top, kept);
        let replay = if decision.is_ok() {
            read.entries
        } else {
            Vec::new()
        };
        let recovery = Recovery {
            position: top,
            recovered: decision.is_ok(),
            replayed: replay.len(),
            reason: decision.err(),
        };
        let mut feed = lock(&feed_lock);
        let buffered = feed.recovering.remove(&id).unwrap_or_default();
        let client = self.registry.read().map.get(&id).cloned();
        let Some(client) = client else {
            return Err(SendError::UnknownClient(id).into());
        };
        let mut highest = top.offset;
        for (offset, message) in replay {
            let position = Position::new(offset, top.epoch);
            if let Some(formatted) = histories.format(room, &position, message) {
                client.push_recorded(self.frame(formatted))?;
            }
        }
        if let Some(reply) = then.and_then(|then| then(&recovery)) {
            client.push_recorded(self.frame(reply))?;
        }
        for (offset, frame) in buffered {
            if offset > highest {
                client.push_recorded(frame)?;
                highest = offset;
            }
        }
        // Frames up to `highest` that the feed has yet to deliver (it is healing, or behind)
        // are not this client's again.
        if feed
            .cursor
            .is_none_or(|cursor| cursor.epoch != top.epoch || cursor.offset < highest)
        {
            feed.floors.insert(id, highest);
        }
        drop(feed);
        histories.count_recovery(&recovery, &self.registry.meter);
        Ok(recovery)
    }
}

/// How long a heal waits before reading the store again.
fn link_retry() -> std::time::Duration {
    std::time::Duration::from_millis(200)
}
