//! The subscribe connection's offer/answer rhythm. We offer, the client answers; one offer is
//! out at a time (a second offer before the answer would be glare the browser refuses), and
//! whatever changes while one is out (a track published, a subscription changed) is offered
//! once, right after the answer.

/// Where the subscribe connection's negotiation stands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubscribeNegotiation {
    offer_outstanding: bool,
    /// Something changed while an offer was out.
    dirty: bool,
}

/// What to do about a change of the subscribe connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// Make an offer now (then call [`SubscribeNegotiation::offered`]).
    Offer,
    /// An offer is out: the change is offered after its answer.
    Wait,
}

/// An answer came with no offer outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoOfferOutstanding;

impl SubscribeNegotiation {
    /// The subscriptions changed.
    pub fn on_change(&mut self) -> OnChange {
        if self.offer_outstanding {
            self.dirty = true;
            OnChange::Wait
        } else {
            OnChange::Offer
        }
    }

    /// An offer was made and sent.
    pub fn offered(&mut self) {
        self.offer_outstanding = true;
    }

    /// The client answered; `Ok(true)` when changes made meanwhile are due in a new offer.
    pub fn on_answer(&mut self) -> Result<bool, NoOfferOutstanding> {
        if !self.offer_outstanding {
            return Err(NoOfferOutstanding);
        }
        self.offer_outstanding = false;
        Ok(std::mem::take(&mut self.dirty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_offer_at_a_time_and_changes_meanwhile_come_after_the_answer() {
        let mut n = SubscribeNegotiation::default();
        assert_eq!(n.on_answer(), Err(NoOfferOutstanding), "nothing was offered");
        assert_eq!(n.on_change(), OnChange::Offer);
        n.offered();
        assert_eq!(n.on_change(), OnChange::Wait);
        assert_eq!(n.on_change(), OnChange::Wait);
        assert_eq!(n.on_answer(), Ok(true), "the two changes are offered once");
        assert_eq!(n.on_change(), OnChange::Offer);
        n.offered();
        assert_eq!(n.on_answer(), Ok(false));
        assert_eq!(n.on_answer(), Err(NoOfferOutstanding), "a second answer");
    }
}
