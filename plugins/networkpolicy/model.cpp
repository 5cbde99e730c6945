#include "networkpolicy/model.hpp"

#include <algorithm>
#include <cstring>

#include "common/cidr_set.hpp"
#include "common/free_ids.hpp"
#include "common/hash.hpp"
#include "common/pod_tag.hpp"

namespace knp::netpol {

namespace {

// Removes `v` from an unsorted vector (order does not matter to the callers).
void eraseValue(std::vector<uint32_t>& xs, uint32_t v) {
    auto it = std::find(xs.begin(), xs.end(), v);
    if (it == xs.end()) return;
    *it = xs.back();
    xs.pop_back();
}

void eraseSorted(std::vector<uint32_t>& xs, uint32_t v) {
    auto it = std::find(xs.begin(), xs.end(), v);
    if (it != xs.end()) xs.erase(it);
}

}  // namespace

bool Model::localLess(const Local& a, const Local& b) noexcept {
    return std::memcmp(a.ips[0].bytes, b.ips[0].bytes, 16) < 0;
}

bool Model::Local::operator==(const Local& o) const noexcept {
    if (identity != o.identity || ips.size() != o.ips.size()) return false;
    for (size_t i = 0; i < ips.size(); ++i)
        if (!(ips[i] == o.ips[i])) return false;
    return true;
}

Model::Model(knp::Host host, uint32_t misses)
    : host_(host), missMetric_(misses), ipToIdentity_(std::make_shared<policy::AddrMap>()) {
    index_.byNamespace = std::make_shared<const std::vector<std::shared_ptr<const NsPolicies>>>();
}

Model::NsModel& Model::namespaceModel(std::string_view name) {
    auto it = namespaces_.find(name);
    if (it != namespaces_.end()) return *it->second;
    auto ns = std::make_unique<NsModel>();
    ns->name = std::string(name);
    NsModel& ref = *ns;
    namespaces_.emplace(ref.name, std::move(ns));
    return ref;
}

// ---------------------------------------------------------------------------------------------
// Policies and peers
// ---------------------------------------------------------------------------------------------

uint32_t Model::internPeer(const PeerSpec& p, const std::string& policyNs) {
    // Equal text ⇔ same selection: the canonical selector forms, plus the policy's namespace
    // when no namespaceSelector widens the peer beyond it.
    std::string key = p.namespaceSelector ? "+" + p.namespaceSelector->canonical() : "-";
    key += '\n';
    key += p.podSelector ? "+" + p.podSelector->canonical() : "-";
    key += '\n';
    if (!p.namespaceSelector) key += policyNs;
    if (auto it = peerByKey_.find(key); it != peerByKey_.end()) {
        ++peerModels_[it->second].refs;
        return it->second;
    }
    uint32_t id = policy::reuseOrGrow(freePeers_, peerModels_.size(), [&](size_t n) {
        peerModels_.resize(n);
        index_.peers.resize(n);
    });
    PeerModel& m = peerModels_[id];
    m = PeerModel{};
    m.key = key;
    m.refs = 1;
    m.fresh = true;
    m.cluster = p.namespaceSelector.has_value();
    if (m.cluster) {
        m.pos = static_cast<uint32_t>(clusterPeers_.size());
        clusterPeers_.push_back(id);
    } else {
        m.scope = &namespaceModel(policyNs);
        m.pos = static_cast<uint32_t>(m.scope->scopedPeers.size());
        m.scope->scopedPeers.push_back(id);
    }
    auto peer = std::make_shared<Peer>();
    peer->namespaceSelector = p.namespaceSelector;
    peer->podSelector = p.podSelector;
    peer->ns = policyNs;
    index_.peers.set(id, std::move(peer));
    peerByKey_.emplace(std::move(key), id);
    freshPeers_.push_back(id);
    return id;
}

void Model::releasePeer(uint32_t id) {
    PeerModel& m = peerModels_[id];
    if (--m.refs > 0) return;
    peerByKey_.erase(m.key);
    std::vector<uint32_t>& list = m.cluster ? clusterPeers_ : m.scope->scopedPeers;
    uint32_t moved = list.back();
    list[m.pos] = moved;
    peerModels_[moved].pos = m.pos;
    list.pop_back();
    // Its members stop pointing back at it; pending changes die with it.
    auto leave = [&](uint32_t ident) {
        eraseValue(ids_[ident].peers, id);
        peersChanged_.push_back(ident);
    };
    if (!m.fresh) index_.peers[id]->members.forEach(leave);
    for (uint32_t ident : m.add) leave(ident);
    index_.peers.set(id, nullptr);
    m = PeerModel{};
    freePeers_.push_back(id);
}

std::shared_ptr<const CompiledPolicy> Model::compile(std::shared_ptr<const PolicySpec> spec) {
    auto c = std::make_shared<CompiledPolicy>();
    c->spec = spec;
    auto build = [&](const std::vector<RuleSpec>& rules, std::vector<CompiledRule>& out, std::string_view dir) {
        for (size_t i = 0; i < rules.size(); ++i) {
            const RuleSpec& r = rules[i];
            CompiledRule cr;
            cr.ports = r.allPorts ? policy::PortSet::all() : policy::PortSet::of(r.ports);
            cr.allPeers = r.allPeers;
            std::vector<policy::IpBlock> blocks;
            for (const PeerSpec& p : r.peers) {
                if (p.ipBlock) {
                    blocks.push_back(*p.ipBlock);
                } else {
                    cr.peers.push_back(internPeer(p, spec->ns));
                }
            }
            // One reference per distinct peer of a rule, released the same way in removePolicy.
            std::sort(cr.peers.begin(), cr.peers.end());
            for (size_t j = 1; j < cr.peers.size(); ++j)
                if (cr.peers[j] == cr.peers[j - 1]) releasePeer(cr.peers[j]);
            cr.peers.erase(std::unique(cr.peers.begin(), cr.peers.end()), cr.peers.end());
            cr.ipBlocks = policy::CidrSet::of(blocks);
            cr.reason = "allowed by " + spec->key + " " + std::string(dir) + " rule " + std::to_string(i);
            out.push_back(std::move(cr));
        }
    };
    build(spec->ingressRules, c->ingressRules, "ingress");
    build(spec->egressRules, c->egressRules, "egress");
    c->denyIngress =
        "isolated for ingress by " + spec->key + "; no ingress rule of a policy selecting the pod allows it";
    c->denyEgress = "isolated for egress by " + spec->key + "; no egress rule of a policy selecting the pod allows it";
    return c;
}

Identity& Model::work(uint32_t id) {
    auto it = dirty_.find(id);
    if (it != dirty_.end()) return it->second;
    return dirty_.emplace(id, *index_.identities[id]).first->second;
}

void Model::setPolicy(std::shared_ptr<const PolicySpec> spec) {
    if (slotByKey_.count(spec->key) != 0) removePolicy(spec->key);
    std::shared_ptr<const CompiledPolicy> compiled = compile(spec);
    uint32_t slot =
        policy::reuseOrGrow(freeSlots_, index_.policies.size(), [&](size_t n) { index_.policies.resize(n); });
    index_.policies.set(slot, compiled);
    slotByKey_.emplace(spec->key, slot);

    NsModel& ns = namespaceModel(spec->ns);
    auto pos = std::lower_bound(ns.policies.begin(), ns.policies.end(), spec->key,
                                [&](uint32_t s, const std::string& k) { return policyAt(s).spec->key < k; });
    ns.policies.insert(pos, slot);
    ns.policiesChanged = true;
    nsIndexDirty_ = true;
    // Identities created in this update get their policies in publish(), from ns.policies.
    for (uint32_t id : ns.identities) {
        const IdentityModel& m = ids_[id];
        if (m.pending || !spec->podSelector.matches(m.core->labels.view())) continue;
        Identity& w = work(id);
        if (spec->ingress) w.ingress.push_back(slot);
        if (spec->egress) w.egress.push_back(slot);
    }
}

void Model::removePolicy(const std::string& key) {
    auto it = slotByKey_.find(key);
    if (it == slotByKey_.end()) return;
    uint32_t slot = it->second;
    slotByKey_.erase(it);
    std::shared_ptr<const CompiledPolicy> old = index_.policies[slot];
    NsModel& ns = namespaceModel(old->spec->ns);
    for (uint32_t id : ns.identities) {
        if (ids_[id].pending) continue;
        auto d = dirty_.find(id);
        const Identity& cur = d != dirty_.end() ? d->second : *index_.identities[id];
        bool has = std::find(cur.ingress.begin(), cur.ingress.end(), slot) != cur.ingress.end() ||
                   std::find(cur.egress.begin(), cur.egress.end(), slot) != cur.egress.end();
        if (!has) continue;
        Identity& w = work(id);
        eraseSorted(w.ingress, slot);
        eraseSorted(w.egress, slot);
    }
    eraseSorted(ns.policies, slot);
    ns.policiesChanged = true;
    nsIndexDirty_ = true;
    for (const auto* rules : {&old->ingressRules, &old->egressRules})
        for (const CompiledRule& r : *rules)
            for (uint32_t peer : r.peers) releasePeer(peer);
    index_.policies.set(slot, nullptr);
    freeSlots_.push_back(slot);
}

// ---------------------------------------------------------------------------------------------
// Pods and identities
// ---------------------------------------------------------------------------------------------

policy::AddrMap& Model::ipMap() {
    // Copied once per update that changes pods while a snapshot still reads the current map.
    if (ipToIdentity_.use_count() != 1) ipToIdentity_ = std::make_shared<policy::AddrMap>(*ipToIdentity_);
    return *ipToIdentity_;
}

void Model::setIps(const std::vector<knp_addr>& ips, uint64_t entry) {
    for (const knp_addr& a : ips)
        if (ipToIdentity_->find(a) != entry) ipMap().set(a, entry);
}

void Model::clearIps(const std::vector<knp_addr>& ips, uint64_t entry) {
    // Only what this pod set: another pod may hold the address by now.
    for (const knp_addr& a : ips)
        if (ipToIdentity_->find(a) == entry) ipMap().erase(a);
}

uint32_t Model::internIdentity(NsModel& ns, std::span<const knp_label> labels) {
    uint64_t h = policy::Hasher().str(ns.name).labels(ns.labels->view()).labels(labels).done();
    for (auto [it, end] = idByHash_.equal_range(h); it != end; ++it) {
        IdentityModel& m = ids_[it->second];
        if (m.ns == &ns && policy::labelsEqual(m.core->labels.view(), labels) &&
            policy::labelsEqual(m.core->nsLabels->view(), ns.labels->view())) {
            ++m.pods;
            return it->second;
        }
    }
    uint32_t id = policy::reuseOrGrow(freeIds_, ids_.size(), [&](size_t n) {
        ids_.resize(n);
        index_.identities.resize(n);
    });
    IdentityModel& m = ids_[id];
    m = IdentityModel{};
    m.core = std::make_shared<const IdentityCore>(ns.name, labels, ns.labels);
    m.hash = h;
    m.pods = 1;
    m.ns = &ns;
    m.nsPos = static_cast<uint32_t>(ns.identities.size());
    ns.identities.push_back(id);
    m.alive = true;
    m.pending = true;
    idByHash_.emplace(h, id);
    pendingIds_.push_back(id);
    return id;
}

void Model::unrefIdentity(uint32_t id) {
    if (--ids_[id].pods == 0) maybeDead_.push_back(id);
}

uint64_t Model::podFingerprint(uint64_t nsFingerprint, knp::PodView p) {
    // Everything the record and the IP map derive from: identity inputs, names, addresses.
    policy::Hasher fp;
    fp.u64(nsFingerprint).labels(p.labels()).str(p.name()).str(p.uid()).u64(p.ips().size());
    for (const knp_addr& a : p.ips()) fp.addr(a);
    return fp.done();
}

uint64_t Model::syncNamespaceLabels(NsModel& ns, std::span<const knp_label> nsLabels) {
    if (!ns.labels || !policy::labelsEqual(ns.labels->view(), nsLabels))
        ns.labels = std::make_shared<const policy::OwnedLabels>(nsLabels);
    return policy::Hasher().str(ns.name).labels(nsLabels).done();
}

void Model::dropRecord(uint32_t r) {
    PodRec& rec = pods_[r];
    clearIps(rec.ips, rec.entry);
    unrefIdentity(rec.identity);
    if (podByIp_.find(rec.ips[0]) == r) podByIp_.erase(rec.ips[0]);
    if (auto it = recByName_.find(rec.key); it != recByName_.end() && it->second == r) recByName_.erase(it);
    rec = PodRec{};
    freePods_.push_back(r);
}

uint32_t Model::indexPod(uint32_t r, NsModel& ns, knp::PodView p, uint64_t fingerprint) {
    uint32_t id = internIdentity(ns, p.labels());
    if (r == kNoId) {
        r = policy::reuseOrGrow(freePods_, pods_.size(), [&](size_t n) { pods_.resize(n); });
        podByIp_.set(p.ips()[0], r);
    } else {
        clearIps(pods_[r].ips, pods_[r].entry);
        unrefIdentity(pods_[r].identity);
        if (!(pods_[r].ips[0] == p.ips()[0])) {
            if (podByIp_.find(pods_[r].ips[0]) == r) podByIp_.erase(pods_[r].ips[0]);
            podByIp_.set(p.ips()[0], r);
        }
    }
    PodRec& rec = pods_[r];
    std::string key = std::string(p.podNamespace()) + "/" + std::string(p.name());
    if (rec.key != key) {
        if (auto it = recByName_.find(rec.key); it != recByName_.end() && it->second == r) recByName_.erase(it);
        recByName_[key] = r;
        rec.key = std::move(key);
    }
    rec.fingerprint = fingerprint;
    rec.identity = id;
    rec.entry = policy::packPodEntry(id, policy::podTagOf(*p.raw()));
    rec.ips.assign(p.ips().begin(), p.ips().end());
    return r;
}

bool Model::walkPods(const knp::Host& host, std::string_view nodeName) {
    ++gen_;
    walked_ = true;
    bool changed = false;
    std::vector<Local> locals;
    std::vector<uint32_t> changedRecs;
    NsModel* ns = nullptr;
    const knp_label* checkedNsLabels = nullptr;  // the host shares one array per namespace
    uint64_t nsFingerprint = 0;
    uint32_t prev = kNoId;  // the record of the pod walked before this one
    host.forEachPod(false, [&](knp::PodView p) {
        // hostNetwork pods are their node's address: never selected, never a peer (§1.7).
        if (p.hostNetwork() || p.ips().empty()) return;
        std::string_view nsName = p.podNamespace();
        std::span<const knp_label> nsLabels = p.namespaceLabels();
        if (ns == nullptr || ns->name != nsName) {
            ns = &namespaceModel(nsName);
            checkedNsLabels = nullptr;
        }
        // Namespace labels are read once per namespace when the host shares their array (it
        // walks pods namespace by namespace): the walk is bound by reading the views.
        if (checkedNsLabels == nullptr || nsLabels.data() != checkedNsLabels) {
            nsFingerprint = syncNamespaceLabels(*ns, nsLabels);
            checkedNsLabels = nsLabels.data();
        }
        uint64_t fingerprint = podFingerprint(nsFingerprint, p);

        // The host walks in a stable order, so the record that followed the previous pod last
        // time is almost always this pod's: a sequential read instead of a hash probe.
        uint32_t r = prev == kNoId ? firstRec_ : pods_[prev].next;
        if (r >= pods_.size() || pods_[r].identity == kNoId || !(pods_[r].ips[0] == p.ips()[0])) {
            uint64_t found = podByIp_.find(p.ips()[0]);
            r = found == policy::AddrMap::kNone ? kNoId : static_cast<uint32_t>(found);
        }
        // Two live pods claiming one address: the first keeps the record; the other is judged
        // from its view (its tag does not match the address's entry).
        if (r != kNoId && pods_[r].gen == gen_) return;
        if (r == kNoId || pods_[r].fingerprint != fingerprint) {
            changed = true;
            r = indexPod(r, *ns, p, fingerprint);
            changedRecs.push_back(r);
        }
        pods_[r].gen = gen_;
        (prev == kNoId ? firstRec_ : pods_[prev].next) = r;
        prev = r;
        if (!nodeName.empty() && p.nodeName() == nodeName) locals.push_back({pods_[r].ips, pods_[r].identity});
    });
    for (uint32_t r = 0; r < pods_.size(); ++r) {
        if (pods_[r].identity == kNoId || pods_[r].gen == gen_) continue;
        changed = true;
        dropRecord(r);
    }
    // After every removal, so that a gone pod's clearing never wins over a live pod's address.
    for (uint32_t r : changedRecs) setIps(pods_[r].ips, pods_[r].entry);
    std::sort(locals.begin(), locals.end(), localLess);
    if (locals != locals_) {
        changed = true;
        locals_ = std::move(locals);
    }
    return changed;
}

bool Model::applyPodChanges(const knp::Update& u, std::string_view nodeName) {
    walked_ = true;
    bool changed = false;
    auto indexed = [](knp::PodView p) { return p && !p.hostNetwork() && !p.ips().empty(); };
    auto isLocal = [&](knp::PodView p) { return !nodeName.empty() && p.nodeName() == nodeName; };
    auto dropLocal = [&](const knp_addr& first) {
        auto it = std::find_if(locals_.begin(), locals_.end(), [&](const Local& l) { return l.ips[0] == first; });
        if (it != locals_.end()) locals_.erase(it);
    };
    std::vector<uint32_t> changedRecs;
    bool contested = false;
    // Two passes, the pods that left first: an address a pod gives up in this update is free
    // for a pod that takes it in the same update.
    for (size_t n = 0; n < 2 * u.podChangeCount() && !contested; ++n) {
        size_t i = n % u.podChangeCount();
        auto [before, after] = u.podChange(i);
        if (indexed(after) != (n >= u.podChangeCount())) continue;
        knp::PodView any = after ? after : before;
        std::string key = std::string(any.podNamespace()) + "/" + std::string(any.name());
        auto it = recByName_.find(key);
        uint32_t r = it == recByName_.end() ? kNoId : it->second;
        if (indexed(before) && isLocal(before)) {
            dropLocal(before.ips()[0]);
            changed = true;
        }
        if (!indexed(after)) {
            if (r != kNoId) {
                dropRecord(r);
                changed = true;
            }
            continue;
        }
        NsModel& ns = namespaceModel(after.podNamespace());
        uint64_t fingerprint = podFingerprint(syncNamespaceLabels(ns, after.namespaceLabels()), after);
        if (r == kNoId || pods_[r].fingerprint != fingerprint) {
            // An address another live pod holds: which of them keeps the record is the walk's
            // rule (first in the host's order), so let the walk settle it.
            uint64_t owner = podByIp_.find(after.ips()[0]);
            if (owner != policy::AddrMap::kNone && owner != r) {
                contested = true;
                break;
            }
            r = indexPod(r, ns, after, fingerprint);
            changedRecs.push_back(r);
            changed = true;
        }
        if (isLocal(after)) {
            Local l{pods_[r].ips, pods_[r].identity};
            locals_.insert(std::upper_bound(locals_.begin(), locals_.end(), l, localLess), std::move(l));
            changed = true;
        }
    }
    for (uint32_t r : changedRecs)
        if (pods_[r].identity != kNoId) setIps(pods_[r].ips, pods_[r].entry);
    // From a consistent index (every record's addresses set) the walk settles the rest.
    if (contested) {
        walkPods(u.host(), nodeName);
        return true;
    }
    // The walk's sequential hints (firstRec_, next) may now point at moved records; the walk
    // checks every hint before it trusts it.
    return changed;
}

// ---------------------------------------------------------------------------------------------
// publish()
// ---------------------------------------------------------------------------------------------

bool Model::peerMatchesIdentity(const Peer& p, const IdentityModel& m) const noexcept {
    return p.matches(m.core->ns, m.core->nsLabels->view(), m.core->labels.view());
}

void Model::computeFreshPeers() {
    // A peer freed and re-created within one update is listed twice.
    std::sort(freshPeers_.begin(), freshPeers_.end());
    freshPeers_.erase(std::unique(freshPeers_.begin(), freshPeers_.end()), freshPeers_.end());
    for (uint32_t pid : freshPeers_) {
        PeerModel& pm = peerModels_[pid];
        if (!pm.fresh || pm.refs == 0) continue;
        const Peer& peer = *index_.peers[pid];
        std::vector<uint32_t> members;
        if (pm.cluster) {
            // The namespaceSelector is decided once per namespace for the identities that carry
            // its current labels; an identity still holding older labels is checked alone.
            for (const auto& [name, ns] : namespaces_) {
                if (ns->identities.empty()) continue;
                bool nsMatch = ns->labels && peer.namespaceSelector->matches(ns->labels->view());
                for (uint32_t id : ns->identities) {
                    const IdentityModel& m = ids_[id];
                    bool match =
                        m.core->nsLabels == ns->labels
                            ? nsMatch && (!peer.podSelector || peer.podSelector->matches(m.core->labels.view()))
                            : peerMatchesIdentity(peer, m);
                    if (match) members.push_back(id);
                }
            }
        } else {
            for (uint32_t id : pm.scope->identities)
                if (peerMatchesIdentity(peer, ids_[id])) members.push_back(id);
        }
        std::sort(members.begin(), members.end());
        for (uint32_t id : members) {
            ids_[id].peers.push_back(pid);
            peersChanged_.push_back(id);
        }
        auto updated = std::make_shared<Peer>(peer);
        updated->members = policy::IdSet::fromSorted(std::move(members), static_cast<uint32_t>(ids_.size()));
        index_.peers.set(pid, std::move(updated));
    }
}

void Model::computePendingIdentities() {
    for (uint32_t id : pendingIds_) {
        IdentityModel& m = ids_[id];
        if (!m.pending) continue;
        m.pending = false;
        Identity ident;
        ident.core = m.core;
        // ns.policies is in key order, so the lists come out sorted.
        for (uint32_t slot : m.ns->policies) {
            const PolicySpec& spec = *policyAt(slot).spec;
            if (!spec.podSelector.matches(m.core->labels.view())) continue;
            if (spec.ingress) ident.ingress.push_back(slot);
            if (spec.egress) ident.egress.push_back(slot);
        }
        auto join = [&](const std::vector<uint32_t>& peers) {
            for (uint32_t pid : peers) {
                PeerModel& pm = peerModels_[pid];
                if (pm.fresh) continue;  // computeFreshPeers saw this identity already
                if (!peerMatchesIdentity(*index_.peers[pid], m)) continue;
                pm.add.push_back(id);
                if (!pm.touched) {
                    pm.touched = true;
                    touchedPeers_.push_back(pid);
                }
                m.peers.push_back(pid);
            }
        };
        join(clusterPeers_);
        join(m.ns->scopedPeers);
        ident.peers = m.peers;
        std::sort(ident.peers.begin(), ident.peers.end());
        index_.identities.set(id, std::make_shared<const Identity>(std::move(ident)));
    }
    pendingIds_.clear();
}

void Model::refreshPeerLists() {
    std::sort(peersChanged_.begin(), peersChanged_.end());
    peersChanged_.erase(std::unique(peersChanged_.begin(), peersChanged_.end()), peersChanged_.end());
    for (uint32_t id : peersChanged_) {
        const IdentityModel& m = ids_[id];
        if (!m.alive) continue;
        Identity& w = work(id);
        w.peers = m.peers;
        std::sort(w.peers.begin(), w.peers.end());
    }
    peersChanged_.clear();
}

void Model::buryDeadIdentities() {
    for (uint32_t id : maybeDead_) {
        IdentityModel& m = ids_[id];
        if (!m.alive || m.pods != 0) continue;
        for (uint32_t pid : m.peers) {
            PeerModel& pm = peerModels_[pid];
            pm.remove.push_back(id);
            if (!pm.touched) {
                pm.touched = true;
                touchedPeers_.push_back(pid);
            }
        }
        NsModel& ns = *m.ns;
        policy::swapRemove(ns.identities, m.nsPos, [&](uint32_t moved, uint32_t pos) { ids_[moved].nsPos = pos; });
        policy::eraseEntry(idByHash_, m.hash, id);
        dirty_.erase(id);
        index_.identities.set(id, nullptr);
        m = IdentityModel{};
        freeIds_.push_back(id);
    }
    maybeDead_.clear();
}

void Model::applyPeerChanges() {
    for (uint32_t pid : touchedPeers_) {
        PeerModel& pm = peerModels_[pid];
        pm.touched = false;
        if (pm.refs != 0) {
            std::sort(pm.add.begin(), pm.add.end());
            std::sort(pm.remove.begin(), pm.remove.end());
            const Peer& cur = *index_.peers[pid];
            auto updated = std::make_shared<Peer>();
            updated->namespaceSelector = cur.namespaceSelector;
            updated->podSelector = cur.podSelector;
            updated->ns = cur.ns;
            updated->members = cur.members.with(pm.add, pm.remove, static_cast<uint32_t>(ids_.size()));
            index_.peers.set(pid, std::move(updated));
        }
        pm.add.clear();
        pm.remove.clear();
    }
    touchedPeers_.clear();
}

void Model::sortDirty() {
    for (auto& [id, ident] : dirty_) {
        auto byKey = [&](uint32_t a, uint32_t b) { return policyAt(a).spec->key < policyAt(b).spec->key; };
        std::sort(ident.ingress.begin(), ident.ingress.end(), byKey);
        std::sort(ident.egress.begin(), ident.egress.end(), byKey);
        index_.identities.set(id, std::make_shared<const Identity>(std::move(ident)));
    }
    dirty_.clear();
}

void Model::rebuildNamespaceIndex() {
    if (!nsIndexDirty_) return;
    for (auto& [name, ns] : namespaces_) {
        if (!ns->policiesChanged) continue;
        ns->policiesChanged = false;
        if (ns->policies.empty()) {
            nsPolicies_.erase(ns->name);
        } else {
            auto e = std::make_shared<NsPolicies>();
            e->ns = ns->name;
            e->slots = ns->policies;
            nsPolicies_[ns->name] = std::move(e);
        }
    }
    auto flat = std::make_shared<std::vector<std::shared_ptr<const NsPolicies>>>();
    flat->reserve(nsPolicies_.size());
    for (const auto& [name, e] : nsPolicies_) flat->push_back(e);
    index_.byNamespace = std::move(flat);
    nsIndexDirty_ = false;
}

void Model::dropEmptyNamespaces() {
    // A deleted namespace (or one a pod only passed through) would otherwise stay forever.
    for (auto it = namespaces_.begin(); it != namespaces_.end();) {
        const NsModel& ns = *it->second;
        if (ns.identities.empty() && ns.policies.empty() && ns.scopedPeers.empty() && !ns.policiesChanged) {
            it = namespaces_.erase(it);
        } else {
            ++it;
        }
    }
}

knp::Interest Model::interest() const {
    knp::Interest in;
    for (const Local& l : locals_) {
        const Identity* i = index_.identities[l.identity].get();
        if (i == nullptr) continue;
        for (const knp_addr& a : l.ips) {
            if (!i->ingress.empty()) in.ingress.local.push_back(policy::hostPrefix(a));
            if (!i->egress.empty()) in.egress.local.push_back(policy::hostPrefix(a));
        }
    }
    return in;
}

std::unique_ptr<Snapshot> Model::publish() {
    computeFreshPeers();
    computePendingIdentities();
    refreshPeerLists();
    buryDeadIdentities();
    applyPeerChanges();
    for (uint32_t pid : freshPeers_) peerModels_[pid].fresh = false;
    freshPeers_.clear();
    sortDirty();
    rebuildNamespaceIndex();
    if (walked_) dropEmptyNamespaces();
    walked_ = false;
    IndexView view = index_;
    view.ipToIdentity = ipToIdentity_;
    auto s = std::make_unique<Snapshot>(std::move(view), host_, missMetric_);
    s->interest = interest();
    return s;
}

ModelStats Model::stats() const {
    ModelStats s;
    s.policies = slotByKey_.size();
    s.pods = pods_.size() - freePods_.size();
    s.identities = ids_.size() - freeIds_.size();
    s.peers = peerModels_.size() - freePeers_.size();
    for (const Local& l : locals_) {
        const Identity* i = index_.identities[l.identity].get();
        if (i == nullptr) continue;
        s.localIngressIsolated += !i->ingress.empty();
        s.localEgressIsolated += !i->egress.empty();
    }
    return s;
}

}  // namespace knp::netpol
