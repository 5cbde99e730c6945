#include "store.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "patch.hpp"

namespace knp::lab {

const char* eventTypeName(EventType t) {
    switch (t) {
        case EventType::Added:
            return "ADDED";
        case EventType::Modified:
            return "MODIFIED";
        case EventType::Deleted:
            return "DELETED";
    }
    return "ERROR";
}

namespace {

constexpr std::string_view kSubdomainMessage =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr std::string_view kLabelMessage =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool isDnsLabel(std::string_view s) {
    if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '-'; });
}

bool isDnsSubdomain(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    auto labels = splitString(s, '.');
    return std::all_of(labels.begin(), labels.end(), isDnsLabel);
}

std::optional<std::uint64_t> parseRv(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

ApiError conflict(const ResourceType& rt, std::string_view name, std::string_view why) {
    ApiError e{409,
               "Conflict",
               fmt::format("Operation cannot be fulfilled on {} \"{}\": {}", rt.groupResource(), name, why),
               {},
               0};
    e.details = json::object{{"name", name}, {"group", rt.group}, {"kind", rt.plural}};
    return e;
}

ApiError alreadyExists(const ResourceType& rt, std::string_view name) {
    ApiError e{409, "AlreadyExists", fmt::format("{} \"{}\" already exists", rt.groupResource(), name), {}, 0};
    e.details = json::object{{"name", name}, {"group", rt.group}, {"kind", rt.plural}};
    return e;
}

ApiError tooLarge(std::uint64_t rv, std::uint64_t current) {
    ApiError e{504, "Timeout", fmt::format("Too large resource version: {}, current: {}", rv, current), {}, 0};
    e.details = json::object{{"causes", json::array{json::object{{"reason", "ResourceVersionTooLarge"},
                                                                 {"message", "Too large resource version"}}}},
                             {"retryAfterSeconds", 1}};
    return e;
}

// metadata.managedFields' fieldsV1 for the fields a write set: maps become "f:<key>" trees,
// lists and scalars leaves. Minimal: enough for clients that strip or display managedFields.
json::object fieldSet(const json::object& obj, bool top) {
    json::object out;
    for (const auto& kv : obj) {
        std::string_view k = kv.key();
        if (top && (k == "apiVersion" || k == "kind")) continue;
        if (top && k == "metadata") {
            json::object meta;
            for (const auto& m : kv.value().get_object())
                if (m.key() == "labels" || m.key() == "annotations" || m.key() == "finalizers" ||
                    m.key() == "ownerReferences")
                    meta[std::string("f:") + std::string(m.key())] =
                        m.value().is_object() ? json::value(fieldSet(m.value().get_object(), false)) : json::object{};
            if (!meta.empty()) out["f:metadata"] = std::move(meta);
            continue;
        }
        out[std::string("f:") + std::string(k)] =
            kv.value().is_object() ? json::value(fieldSet(kv.value().get_object(), false)) : json::object{};
    }
    return out;
}

void recordManager(json::object& obj, const ResourceType& rt, const WriteOptions& opts, std::string_view operation,
                   const json::object& written, bool statusOnly) {
    json::object& meta = ensureObject(obj, "metadata");
    std::string manager = opts.fieldManager.empty() ? "unknown" : opts.fieldManager;
    json::object entry{{"manager", manager}, {"operation", operation},   {"apiVersion", rt.apiVersion()},
                       {"time", nowTime()},  {"fieldsType", "FieldsV1"}, {"fieldsV1", fieldSet(written, true)}};
    if (statusOnly) entry["subresource"] = "status";
    json::value& mf = meta["managedFields"];
    if (!mf.is_array()) mf = json::array{};
    auto& arr = mf.get_array();
    auto same = std::find_if(arr.begin(), arr.end(), [&](const json::value& v) {
        if (!v.is_object()) return false;
        const auto& o = v.get_object();
        return stringAt(o, "manager") == manager && stringAt(o, "operation") == operation &&
               stringAt(o, "subresource") == (statusOnly ? "status" : "");
    });
    if (same != arr.end())
        *same = std::move(entry);
    else
        arr.push_back(std::move(entry));
}

void defaultPorts(json::value* containers, bool podPorts) {
    if (!containers || !containers->is_array()) return;
    for (auto& c : containers->get_array()) {
        if (!c.is_object()) continue;
        auto it = c.get_object().find("ports");
        if (it == c.get_object().end() || !it->value().is_array()) continue;
        for (auto& p : it->value().get_array())
            if (p.is_object() && !p.get_object().contains("protocol")) p.get_object()["protocol"] = "TCP";
        (void)podPorts;
    }
}

json::value* member(json::object& o, std::string_view k) {
    auto it = o.find(k);
    return it == o.end() ? nullptr : &it->value();
}

// What the real API server's defaulting does for the built-in kinds served here.
void applyDefaults(const ResourceType& rt, json::object& obj) {
    json::object& meta = ensureObject(obj, "metadata");
    if (rt.group.empty() && rt.plural == "namespaces") {
        ensureObject(meta, "labels")["kubernetes.io/metadata.name"] = meta["name"];
        json::object& spec = ensureObject(obj, "spec");
        if (!spec.contains("finalizers")) spec["finalizers"] = json::array{"kubernetes"};
        json::object& status = ensureObject(obj, "status");
        if (!status.contains("phase")) status["phase"] = "Active";
    } else if (rt.group.empty() && rt.plural == "pods") {
        json::object& spec = ensureObject(obj, "spec");
        for (const char* f : {"containers", "initContainers", "ephemeralContainers"})
            defaultPorts(member(spec, f), true);
        if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
        if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
        if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
        if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
        json::object& status = ensureObject(obj, "status");
        if (!status.contains("phase")) status["phase"] = "Pending";
    } else if (rt.group == "networking.k8s.io" && rt.plural == "networkpolicies") {
        json::object& spec = ensureObject(obj, "spec");
        ensureObject(spec, "podSelector");
        for (const char* dir : {"ingress", "egress"}) {
            json::value* rules = member(spec, dir);
            if (!rules || !rules->is_array()) continue;
            for (auto& r : rules->get_array()) {
                if (!r.is_object()) continue;
                json::value* ports = member(r.get_object(), "ports");
                if (!ports || !ports->is_array()) continue;
                for (auto& p : ports->get_array())
                    if (p.is_object() && !p.get_object().contains("protocol")) p.get_object()["protocol"] = "TCP";
            }
        }
        json::value* types = member(spec, "policyTypes");
        if (!types || !types->is_array() || types->get_array().empty()) {
            json::array t{"Ingress"};
            json::value* egress = member(spec, "egress");
            if (egress && egress->is_array() && !egress->get_array().empty()) t.push_back("Egress");
            spec["policyTypes"] = std::move(t);
        }
    }
}

std::optional<ApiError> validate(const ResourceType& rt, const json::object& obj) {
    std::string_view name = metaString(obj, "name");
    bool ok = rt.group.empty() && rt.plural == "namespaces" ? isDnsLabel(name) : isDnsSubdomain(name);
    if (!ok)
        return invalid(rt.kind, name, "metadata.name",
                       fmt::format("Invalid value: \"{}\": {}", name,
                                   rt.plural == "namespaces" ? kLabelMessage : kSubdomainMessage),
                       rt.group);
    if (const json::object* meta = metadataOf(obj)) {
        if (const json::object* labels = objectAt(*meta, "labels"))
            for (const auto& kv : *labels)
                if (!kv.value().is_string())
                    return invalid(rt.kind, name, fmt::format("metadata.labels[{}]", std::string(kv.key())),
                                   "Invalid value: a label value must be a string", rt.group);
    }
    if (rt.plural == "networkpolicies") {
        const json::value* types = valueAtPath(obj, "spec.policyTypes");
        if (types && types->is_array())
            for (const auto& t : types->get_array())
                if (t != "Ingress" && t != "Egress")
                    return invalid(rt.kind, name, "spec.policyTypes",
                                   fmt::format("Unsupported value: {}: supported values: \"Ingress\", \"Egress\"",
                                               json::serialize(t)),
                                   rt.group);
    }
    return std::nullopt;
}

bool specChanged(const json::object& a, const json::object& b) {
    for (const auto& kv : a)
        if (kv.key() != "metadata" && kv.key() != "status" && kv.key() != "apiVersion" && kv.key() != "kind") {
            auto it = b.find(kv.key());
            if (it == b.end() || it->value() != kv.value()) return true;
        }
    for (const auto& kv : b)
        if (kv.key() != "metadata" && kv.key() != "status" && kv.key() != "apiVersion" && kv.key() != "kind" &&
            !a.contains(kv.key()))
            return true;
    return false;
}

std::string continueToken(std::uint64_t rv, const std::string& lastKey) {
    json::object t{{"v", "meta.k8s.io/v1"}, {"rv", rv}, {"start", lastKey + std::string(1, '\0')}};
    return base64Encode(json::serialize(t));
}

struct ContinueState {
    std::uint64_t rv;
    std::string start;
};

std::optional<ContinueState> parseContinue(std::string_view token) {
    auto raw = base64Decode(token);
    if (!raw) return std::nullopt;
    boost::system::error_code ec;
    json::value v = json::parse(*raw, ec);
    if (ec || !v.is_object()) return std::nullopt;
    const auto& o = v.get_object();
    auto rv = o.find("rv");
    if (stringAt(o, "v") != "meta.k8s.io/v1" || rv == o.end() || !rv->value().is_number()) return std::nullopt;
    boost::system::error_code ec2;
    auto n = rv->value().to_number<std::uint64_t>(ec2);
    if (ec2) return std::nullopt;
    return ContinueState{n, std::string(stringAt(o, "start"))};
}

}  // namespace

Store::Store(Registry& registry, std::size_t historyLimit)
    : registry_(registry), historyLimit_(std::max<std::size_t>(historyLimit, 1)) {}

void Store::createSystemNamespaces() {
    ResourceType* ns = registry_.find("", "v1", "namespaces");
    for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
        auto r = create(*ns, "", json::object{{"metadata", json::object{{"name", name}}}}, {false, "kube-apiserver"});
        (void)r;
    }
}

ApiError Store::notFound(const ResourceType& rt, std::string_view name) {
    ApiError e{404, "NotFound", fmt::format("{} \"{}\" not found", rt.groupResource(), name), {}, 0};
    e.details = json::object{{"name", name}, {"group", rt.group}, {"kind", rt.plural}};
    if (rt.group.empty()) e.details.erase("group");
    return e;
}

ApiError Store::gone(std::string message) { return ApiError{410, "Expired", std::move(message), {}, 0}; }

std::string Store::key(const ResourceType& rt, std::string_view ns, std::string_view name) {
    return rt.namespaced ? fmt::format("{}/{}", ns, name) : std::string(name);
}

const Store::ObjectMap* Store::objectsOf(const ResourceType& rt) const {
    auto it = objects_.find(&rt);
    return it == objects_.end() ? nullptr : &it->second;
}

bool Store::namespaceExists(std::string_view ns) const {
    const ResourceType* nsType = registry_.find("", "v1", "namespaces");
    const ObjectMap* m = objectsOf(*nsType);
    return m && m->count(std::string(ns));
}

std::size_t Store::objectCount() const {
    std::size_t n = 0;
    for (const auto& [rt, m] : objects_) n += m.size();
    return n;
}

void Store::expireHistory() {
    history_.clear();
    oldest_ = rv_;
}

void Store::record(EventType type, const ResourceType& rt, ObjectPtr object, ObjectPtr previous) {
    history_.push_back(Event{type, rv_, &rt, std::move(object), std::move(previous)});
    while (history_.size() > historyLimit_) {
        oldest_ = history_.front().rv;
        history_.pop_front();
    }
    if (sink_) sink_->publish(history_.back());
}

ApiResult<ObjectPtr> Store::get(const ResourceType& rt, std::string_view ns, std::string_view name) const {
    const ObjectMap* m = objectsOf(rt);
    if (m) {
        auto it = m->find(key(rt, ns, name));
        if (it != m->end()) return it->second;
    }
    return notFound(rt, name);
}

std::vector<ObjectPtr> Store::snapshot(const ResourceType& rt, std::string_view ns) const {
    std::vector<ObjectPtr> out;
    const ObjectMap* m = objectsOf(rt);
    if (!m) return out;
    std::string prefix = rt.namespaced && !ns.empty() ? std::string(ns) + "/" : std::string();
    for (auto it = m->lower_bound(prefix); it != m->end() && it->first.starts_with(prefix); ++it)
        out.push_back(it->second);
    return out;
}

ApiResult<std::vector<Event>> Store::eventsSince(const ResourceType& rt, std::uint64_t rv) const {
    if (rv < oldest_) return gone(fmt::format("too old resource version: {} ({})", rv, oldest_));
    std::vector<Event> out;
    auto first = std::upper_bound(history_.begin(), history_.end(), rv,
                                  [](std::uint64_t v, const Event& e) { return v < e.rv; });
    for (auto it = first; it != history_.end(); ++it)
        if (it->rt == &rt) out.push_back(*it);
    return out;
}

ApiResult<ListResult> Store::list(const ResourceType& rt, std::string_view ns, const ListOptions& opts) const {
    std::uint64_t at = rv_;
    std::string start;
    bool honourLimit = true;
    const std::string& rvs = opts.resourceVersion;
    const std::string& match = opts.resourceVersionMatch;
    std::optional<std::uint64_t> rv;
    if (!rvs.empty()) {
        rv = parseRv(rvs);
        if (!rv) return badRequest(fmt::format("invalid resource version \"{}\"", rvs));
    }
    if (!opts.continueToken.empty()) {
        if (!match.empty()) return badRequest("resourceVersionMatch is forbidden when continue is provided");
        if (rv && *rv != 0) return badRequest("specifying resource version is not allowed when using continue");
        auto c = parseContinue(opts.continueToken);
        if (!c)
            return badRequest(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
        if (c->rv < oldest_)
            return gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a "
                "new list without the continue parameter, or use the continue token in this response to retrieve "
                "the remainder of the results. Continuing with the provided token results in an inconsistent list - "
                "objects that were created, modified, or deleted between the time the first chunk was returned and "
                "now may show up in the list.");
        at = c->rv;
        start = c->start;
    } else if (match == "Exact") {
        if (!rv || *rv == 0)
            return badRequest("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"\" or \"0\"");
        at = *rv;
    } else if (match == "NotOlderThan") {
        if (!rv) return badRequest("resourceVersionMatch is forbidden unless resourceVersion is provided");
        if (*rv == 0) honourLimit = false;  // "Any": served whole, as from the watch cache
        if (*rv > rv_) return tooLarge(*rv, rv_);
    } else if (!match.empty()) {
        return badRequest(fmt::format("unsupported resourceVersionMatch \"{}\"", match));
    } else if (rv) {
        if (*rv == 0) {
            honourLimit = false;
        } else if (opts.limit > 0) {
            at = *rv;  // legacy: a resourceVersion with a limit reads exactly that version
        } else if (*rv > rv_) {
            return tooLarge(*rv, rv_);
        }
    }
    if (at > rv_) return tooLarge(at, rv_);
    if (at < oldest_) return gone(fmt::format("too old resource version: {} ({})", at, oldest_));

    // The state at `at`: the live map, with every later change to this kind undone.
    const ObjectMap empty;
    const ObjectMap* live = objectsOf(rt);
    if (!live) live = &empty;
    ObjectMap past;
    const ObjectMap* view = live;
    if (at < rv_) {
        auto first = std::upper_bound(history_.begin(), history_.end(), at,
                                      [](std::uint64_t v, const Event& e) { return v < e.rv; });
        bool copied = false;
        for (auto it = history_.end(); it != first;) {
            --it;
            if (it->rt != &rt) continue;
            if (!copied) {
                past = *live;
                copied = true;
            }
            const json::object& o = it->object->value;
            std::string k = key(rt, metaString(o, "namespace"), metaString(o, "name"));
            if (it->previous)
                past[k] = it->previous;
            else
                past.erase(k);
        }
        if (copied) view = &past;
    }

    ListResult out;
    out.rv = at;
    std::string prefix = rt.namespaced && !ns.empty() ? std::string(ns) + "/" : std::string();
    auto it = view->lower_bound(std::max(prefix, start));
    std::int64_t limit = honourLimit ? opts.limit : 0;
    std::string lastKey;
    for (; it != view->end() && it->first.starts_with(prefix); ++it) {
        const json::object& o = it->second->value;
        if (!opts.labels.matches(o) || !opts.fields.matches(o)) continue;
        if (limit > 0 && static_cast<std::int64_t>(out.items.size()) == limit) break;
        out.items.push_back(it->second);
        lastKey = it->first;
    }
    if (limit > 0 && it != view->end() && it->first.starts_with(prefix)) {
        // As the API server: remainingItemCount only without selectors (then it is a count of
        // keys); with selectors, only whether anything matches further on.
        bool selective = !opts.labels.empty() || !opts.fields.empty();
        std::int64_t remaining = 0;
        for (auto r = it; r != view->end() && r->first.starts_with(prefix); ++r) {
            if (!selective) {
                ++remaining;
            } else if (opts.labels.matches(r->second->value) && opts.fields.matches(r->second->value)) {
                remaining = 1;
                break;
            }
        }
        if (remaining > 0) {
            out.continueToken = continueToken(at, lastKey);
            if (!selective) out.remainingItemCount = remaining;
        }
    }
    return out;
}

ApiResult<json::object> Store::admitCreate(const ResourceType& rt, std::string_view ns, json::object body,
                                           const WriteOptions& opts, std::string_view operation) {
    std::string_view apiVersion = stringAt(body, "apiVersion");
    std::string_view kind = stringAt(body, "kind");
    if (!apiVersion.empty() && apiVersion != rt.apiVersion())
        return badRequest(fmt::format("the API version in the data ({}) does not match the expected API version ({})",
                                      apiVersion, rt.apiVersion()));
    if (!kind.empty() && kind != rt.kind)
        return badRequest(
            fmt::format("the kind in the data ({}) does not match the expected kind ({})", kind, rt.kind));
    json::object written = body;
    // apiVersion and kind first, as the API server writes them.
    json::object ordered{{"apiVersion", rt.apiVersion()}, {"kind", rt.kind}};
    for (auto& kv : body)
        if (kv.key() != "apiVersion" && kv.key() != "kind") ordered[kv.key()] = std::move(kv.value());
    body = std::move(ordered);
    json::object& meta = ensureObject(body, "metadata");
    if (rt.namespaced) {
        std::string_view bodyNs = stringAt(meta, "namespace");
        if (!bodyNs.empty() && bodyNs != ns)
            return badRequest("the namespace of the provided object does not match the namespace sent on the request");
        meta["namespace"] = ns;
    } else {
        meta.erase("namespace");
    }
    if (stringAt(meta, "name").empty()) {
        std::string_view gen = stringAt(meta, "generateName");
        if (gen.empty())
            return invalid(rt.kind, "", "metadata.name", "Required value: name or generateName is required", rt.group);
        meta["name"] = std::string(gen) + randomNameSuffix();
    }
    if (auto err = validate(rt, body)) return *err;
    if (rt.namespaced && !namespaceExists(ns)) return notFound(*registry_.find("", "v1", "namespaces"), ns);
    for (const char* f : {"resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields"})
        meta.erase(f);
    meta["uid"] = randomUid();
    meta["creationTimestamp"] = nowTime();
    if (rt.generation) meta["generation"] = 1;
    applyDefaults(rt, body);
    recordManager(body, rt, opts, operation, written, false);
    return body;
}

ApiResult<ObjectPtr> Store::create(const ResourceType& rt, std::string_view ns, json::object body,
                                   const WriteOptions& opts) {
    auto admitted = admitCreate(rt, ns, std::move(body), opts, "Update");
    if (!admitted.ok()) return admitted.error();
    json::object& obj = admitted.value();
    std::string k = key(rt, ns, metaString(obj, "name"));
    ObjectMap& m = objects(rt);
    if (m.count(k)) return alreadyExists(rt, metaString(obj, "name"));
    if (opts.dryRun) return freeze(std::move(obj));
    ensureObject(obj, "metadata")["resourceVersion"] = std::to_string(++rv_);
    ObjectPtr p = freeze(std::move(obj));
    m[k] = p;
    record(EventType::Added, rt, p, nullptr);
    return p;
}

ApiResult<ObjectPtr> Store::commitUpdate(const ResourceType& rt, const ObjectPtr& old, json::object next,
                                         const WriteOptions& opts, std::string_view operation, bool statusOnly) {
    const json::object& prev = old->value;
    const json::object* prevMeta = metadataOf(prev);
    json::object written = next;
    json::object result;
    if (statusOnly) {
        result = prev;
        auto st = next.find("status");
        if (st != next.end())
            result["status"] = st->value();
        else
            result.erase("status");
    } else {
        result = std::move(next);
        result["apiVersion"] = rt.apiVersion();
        result["kind"] = rt.kind;
        json::object& meta = ensureObject(result, "metadata");
        // System fields are the server's: a client cannot change them through an update.
        for (const char* f : {"name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                              "deletionGracePeriodSeconds", "generation", "managedFields", "resourceVersion"}) {
            auto it = prevMeta->find(f);
            if (it != prevMeta->end())
                meta[f] = it->value();
            else
                meta.erase(f);
        }
        applyDefaults(rt, result);
        if (auto err = validate(rt, result)) return *err;
        if (rt.generation && specChanged(prev, result)) {
            auto g = prevMeta->find("generation");
            std::int64_t gen = g != prevMeta->end() && g->value().is_int64() ? g->value().get_int64() : 0;
            meta["generation"] = gen + 1;
        }
    }
    // A write that changes nothing keeps the resourceVersion and sends no event, as in the API server.
    if (result == prev) return old;
    recordManager(result, rt, opts, operation, written, statusOnly);
    json::object& meta = ensureObject(result, "metadata");
    std::string k = key(rt, metaString(prev, "namespace"), metaString(prev, "name"));
    // The last finalizer removed from an object being deleted completes its deletion.
    const json::value* fin = valueAtPath(result, "metadata.finalizers");
    bool finalizersLeft = fin && fin->is_array() && !fin->get_array().empty();
    if (meta.contains("deletionTimestamp") && !finalizersLeft) {
        if (opts.dryRun) return freeze(std::move(result));
        return commitDelete(rt, k, freeze(std::move(result)));
    }
    if (opts.dryRun) return freeze(std::move(result));
    meta["resourceVersion"] = std::to_string(++rv_);
    ObjectPtr p = freeze(std::move(result));
    objects(rt)[k] = p;
    record(EventType::Modified, rt, p, old);
    return p;
}

ObjectPtr Store::commitDelete(const ResourceType& rt, const std::string& k, const ObjectPtr& old) {
    json::object last = old->value;
    ensureObject(last, "metadata")["resourceVersion"] = std::to_string(++rv_);
    ObjectPtr p = freeze(std::move(last));
    ObjectMap& m = objects(rt);
    auto it = m.find(k);
    ObjectPtr previous = it != m.end() ? it->second : old;
    if (it != m.end()) m.erase(it);
    record(EventType::Deleted, rt, p, previous);
    return p;
}

ApiResult<ObjectPtr> Store::update(const ResourceType& rt, std::string_view ns, std::string_view name,
                                   json::object body, const WriteOptions& opts, bool statusOnly) {
    auto cur = get(rt, ns, name);
    if (!cur.ok()) return cur.error();
    json::object& meta = ensureObject(body, "metadata");
    std::string_view bodyName = stringAt(meta, "name");
    if (bodyName.empty())
        meta["name"] = name;
    else if (bodyName != name)
        return badRequest(
            fmt::format("the name of the object ({}) does not match the name on the URL ({})", bodyName, name));
    std::string_view bodyNs = stringAt(meta, "namespace");
    if (rt.namespaced && !bodyNs.empty() && bodyNs != ns)
        return badRequest("the namespace of the provided object does not match the namespace sent on the request");
    std::string_view apiVersion = stringAt(body, "apiVersion");
    if (!apiVersion.empty() && apiVersion != rt.apiVersion())
        return badRequest(fmt::format("the API version in the data ({}) does not match the expected API version ({})",
                                      apiVersion, rt.apiVersion()));
    std::string_view rv = stringAt(meta, "resourceVersion");
    if (!rv.empty() && rv != metaString(cur.value()->value, "resourceVersion"))
        return conflict(rt, name,
                        "the object has been modified; please apply your changes to the latest version and try again");
    return commitUpdate(rt, cur.value(), std::move(body), opts, "Update", statusOnly);
}

ApiResult<ObjectPtr> Store::patch(const ResourceType& rt, std::string_view ns, std::string_view name, PatchType type,
                                  const json::value& patch, const WriteOptions& opts, bool statusOnly) {
    auto cur = get(rt, ns, name);
    if (!cur.ok()) {
        if (type != PatchType::Apply || statusOnly) return cur.error();
        if (!patch.is_object()) return badRequest("the applied configuration must be an object");
        std::string_view applied = metaString(patch.get_object(), "name");
        if (!applied.empty() && applied != name)
            return badRequest(
                fmt::format("the name of the object ({}) does not match the name on the URL ({})", applied, name));
        json::object body = patch.get_object();
        ensureObject(body, "metadata")["name"] = name;
        auto admitted = admitCreate(rt, ns, std::move(body), opts, "Apply");
        if (!admitted.ok()) return admitted.error();
        json::object& obj = admitted.value();
        if (opts.dryRun) return freeze(std::move(obj));
        ensureObject(obj, "metadata")["resourceVersion"] = std::to_string(++rv_);
        ObjectPtr p = freeze(std::move(obj));
        objects(rt)[key(rt, ns, name)] = p;
        record(EventType::Added, rt, p, nullptr);
        return p;
    }
    const ObjectPtr& old = cur.value();
    json::value v = old->value;
    switch (type) {
        case PatchType::Json:
            if (!patch.is_array()) return badRequest("a JSON patch must be an array of operations");
            if (auto st = jsonPatch(v, patch.get_array()); !st)
                return ApiError{422,
                                "Invalid",
                                fmt::format("the server rejected our request due to an error in our request: {}",
                                            st.error().message),
                                {},
                                0};
            break;
        case PatchType::Merge:
            mergePatch(v, patch);
            break;
        case PatchType::Strategic:
            strategicMerge(v, patch, rt.keyedLists);
            break;
        case PatchType::Apply:
            applyMerge(v, patch, rt.keyedLists);
            break;
    }
    if (!v.is_object()) return badRequest("the patched object is not a JSON object");
    json::object& next = v.get_object();
    if (metaString(next, "name") != name)
        return invalid(rt.kind, name, "metadata.name", "Invalid value: field is immutable", rt.group);
    std::string_view rv = metaString(next, "resourceVersion");
    if (!rv.empty() && rv != metaString(old->value, "resourceVersion"))
        return conflict(rt, name,
                        "the object has been modified; please apply your changes to the latest version and try again");
    return commitUpdate(rt, old, std::move(next), opts, type == PatchType::Apply ? "Apply" : "Update", statusOnly);
}

ApiResult<ObjectPtr> Store::remove(const ResourceType& rt, std::string_view ns, std::string_view name,
                                   const json::object& deleteOptions, const WriteOptions& opts) {
    auto cur = get(rt, ns, name);
    if (!cur.ok()) return cur.error();
    ObjectPtr old = cur.value();
    if (const json::object* pre = objectAt(deleteOptions, "preconditions")) {
        std::string_view uid = stringAt(*pre, "uid"), rv = stringAt(*pre, "resourceVersion");
        if (!uid.empty() && uid != metaString(old->value, "uid"))
            return conflict(rt, name,
                            fmt::format("Precondition failed: UID in precondition: {}, UID in object meta: {}", uid,
                                        metaString(old->value, "uid")));
        if (!rv.empty() && rv != metaString(old->value, "resourceVersion"))
            return conflict(rt, name,
                            fmt::format("Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in "
                                        "object meta: {}",
                                        rv, metaString(old->value, "resourceVersion")));
    }
    if (opts.dryRun) return old;
    std::string k = key(rt, ns, name);
    // Finalizers hold the object, marked for deletion, until a client removes them.
    const json::value* fin = valueAtPath(old->value, "metadata.finalizers");
    if (fin && fin->is_array() && !fin->get_array().empty()) {
        if (metaString(old->value, "deletionTimestamp").empty()) {
            json::object next = old->value;
            json::object& meta = ensureObject(next, "metadata");
            meta["deletionTimestamp"] = nowTime();
            meta["deletionGracePeriodSeconds"] = 0;
            meta["resourceVersion"] = std::to_string(++rv_);
            ObjectPtr p = freeze(std::move(next));
            objects(rt)[k] = p;
            record(EventType::Modified, rt, p, old);
            return p;
        }
        return old;
    }
    // A namespace takes its contents with it (immediately here: there is no namespace controller).
    if (rt.group.empty() && rt.plural == "namespaces") {
        for (auto& t : registry_.all()) {
            if (!t.namespaced) continue;
            auto it = objects_.find(&t);
            if (it == objects_.end()) continue;
            std::vector<std::pair<std::string, ObjectPtr>> victims;
            std::string prefix = std::string(name) + "/";
            for (auto o = it->second.lower_bound(prefix); o != it->second.end() && o->first.starts_with(prefix); ++o)
                victims.emplace_back(o->first, o->second);
            for (auto& [vk, vo] : victims) commitDelete(t, vk, vo);
        }
    }
    return commitDelete(rt, k, old);
}

ApiResult<ObjectPtr> Store::upsert(const ResourceType& rt, json::object body) {
    std::string ns(metaString(body, "namespace"));
    if (rt.namespaced && ns.empty()) ns = "default";
    std::string name(metaString(body, "name"));
    WriteOptions opts{false, "knp-lab-load"};
    auto cur = get(rt, ns, name);
    if (!cur.ok() || name.empty()) return create(rt, ns, std::move(body), opts);
    ensureObject(body, "metadata").erase("resourceVersion");
    return update(rt, ns, name, std::move(body), opts, false);
}

}  // namespace knp::lab
