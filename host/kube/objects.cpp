#include "kube/objects.hpp"

#include <algorithm>
#include <tuple>

#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace knp::host::kube {

namespace json = boost::json;

namespace {

std::string_view stringAt(const json::object& o, std::string_view key) {
    auto it = o.find(key);
    if (it == o.end() || !it->value().is_string()) return {};
    return it->value().get_string();
}

bool validName(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    });
}

}  // namespace

std::string WatchTarget::describe() const {
    std::string s =
        group.empty() ? fmt::format("{}/{}", version, resource) : fmt::format("{}/{}/{}", group, version, resource);
    if (!ns.empty()) s += fmt::format(" ns={:?}", ns);
    if (!labelSelector.empty()) s += fmt::format(" labels={:?}", labelSelector);
    if (!fieldSelector.empty()) s += fmt::format(" fields={:?}", fieldSelector);
    return s;
}

std::string WatchTarget::path() const {
    std::string p = group.empty() ? fmt::format("/api/{}", version) : fmt::format("/apis/{}/{}", group, version);
    if (!ns.empty()) p += fmt::format("/namespaces/{}", ns);
    return p + "/" + resource;
}

Result<WatchTarget> WatchTarget::parse(std::string_view gvr) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t slash = gvr.find('/', start);
        parts.emplace_back(gvr.substr(start, slash == std::string_view::npos ? gvr.npos : slash - start));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    WatchTarget t;
    if (parts.size() == 2) {
        t.version = parts[0];
        t.resource = parts[1];
    } else if (parts.size() == 3) {
        t.group = parts[0] == "core" ? "" : parts[0];
        t.version = parts[1];
        t.resource = parts[2];
    } else {
        return makeError("{:?}: want group/version/resource (core: v1/pods)", gvr);
    }
    if ((!t.group.empty() && !validName(t.group)) || !validName(t.version) || !validName(t.resource))
        return makeError("{:?}: want group/version/resource in lower case (core: v1/pods)", gvr);
    return t;
}

const char* eventTypeName(uint32_t type) noexcept {
    switch (type) {
        case KNP_EVENT_ADDED:
            return "ADDED";
        case KNP_EVENT_MODIFIED:
            return "MODIFIED";
        case KNP_EVENT_DELETED:
            return "DELETED";
        case KNP_EVENT_SYNCED:
            return "SYNCED";
        case KNP_EVENT_RELIST:
            return "RELIST";
        default:
            return "UNKNOWN";
    }
}

std::string queryEscape(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

bool stripManagedFields(json::object& object) {
    auto it = object.find("metadata");
    if (it == object.end() || !it->value().is_object()) return false;
    return it->value().get_object().erase("managedFields") > 0;
}

namespace {

std::shared_ptr<const std::string> serializeShared(const json::object& object) {
    std::string text = json::serialize(object);
    // Objects live in the cache for as long as they exist: no slack from the serializer's growth.
    if (text.capacity() > text.size() + text.size() / 8) text.shrink_to_fit();
    return std::make_shared<const std::string>(std::move(text));
}

}  // namespace

Result<DecodedObject> decodeObject(json::object& object, std::string_view apiVersion, std::string_view kind,
                                   ObjectRetention retention) {
    stripManagedFields(object);
    auto md = object.find("metadata");
    if (md == object.end() || !md->value().is_object()) return makeError("object without metadata");
    const json::object& meta = md->value().get_object();
    DecodedObject d;
    d.name = stringAt(meta, "name");
    if (d.name.empty()) return makeError("object without metadata.name");
    d.ns = stringAt(meta, "namespace");
    d.resourceVersion = stringAt(meta, "resourceVersion");
    if (!apiVersion.empty() && !object.contains("apiVersion")) object["apiVersion"] = apiVersion;
    if (!kind.empty() && !object.contains("kind")) object["kind"] = kind;
    d.json = serializeShared(object);
    if (retention == ObjectRetention::Metadata) {
        // (`md` may be stale after the inserts above.) Annotations go: kubectl's
        // last-applied-configuration alone is a copy of the object.
        json::object t(object.storage());
        for (std::string_view k : {"apiVersion", "kind", "metadata"})
            if (auto it = object.find(k); it != object.end()) t[k] = it->value();
        if (auto it = t.find("metadata"); it != t.end() && it->value().is_object())
            it->value().get_object().erase("annotations");
        d.tombstone = serializeShared(t);
    }
    return d;
}

std::string ObjectCache::key(std::string_view ns, std::string_view name) {
    std::string k;
    k.reserve(ns.size() + 1 + name.size());
    k.append(ns).push_back('/');
    k.append(name);
    return k;
}

bool ObjectCache::contains(std::string_view ns, std::string_view name) const {
    return objects_.count(key(ns, name)) > 0;
}

namespace {

WatchEvent eventOf(uint32_t type, DecodedObject& o) {
    WatchEvent ev;
    ev.type = type;
    ev.object = std::move(o.json);
    ev.ns = std::move(o.ns);
    ev.name = std::move(o.name);
    ev.resourceVersion = std::move(o.resourceVersion);
    return ev;
}

}  // namespace

WatchEvent ObjectCache::upsert(uint32_t type, DecodedObject& o, Entry& e) {
    e.resourceVersion = o.resourceVersion;
    e.json = retention_ == ObjectRetention::Metadata && o.tombstone ? std::move(o.tombstone) : o.json;
    e.generation = generation_;
    return eventOf(type, o);
}

std::optional<WatchEvent> ObjectCache::apply(uint32_t type, DecodedObject object) {
    std::string k = key(object.ns, object.name);
    auto it = objects_.find(k);
    if (type == KNP_EVENT_DELETED) {
        if (it == objects_.end()) return std::nullopt;
        objects_.erase(it);
        return eventOf(KNP_EVENT_DELETED, object);
    }
    if (it == objects_.end()) return upsert(KNP_EVENT_ADDED, object, objects_[std::move(k)]);
    if (!object.resourceVersion.empty() && it->second.resourceVersion == object.resourceVersion) {
        it->second.generation = generation_;
        return std::nullopt;
    }
    return upsert(KNP_EVENT_MODIFIED, object, it->second);
}

std::optional<WatchEvent> ObjectCache::listed(DecodedObject object) {
    return apply(KNP_EVENT_MODIFIED, std::move(object));
}

std::vector<WatchEvent> ObjectCache::sweep() {
    std::vector<WatchEvent> out;
    for (auto it = objects_.begin(); it != objects_.end();) {
        if (it->second.generation == generation_) {
            ++it;
            continue;
        }
        WatchEvent ev;
        ev.type = KNP_EVENT_DELETED;
        size_t slash = it->first.find('/');
        ev.ns = it->first.substr(0, slash);
        ev.name = it->first.substr(slash + 1);
        ev.resourceVersion = std::move(it->second.resourceVersion);
        ev.object = std::move(it->second.json);
        out.push_back(std::move(ev));
        it = objects_.erase(it);
    }
    std::sort(out.begin(), out.end(),
              [](const WatchEvent& a, const WatchEvent& b) { return std::tie(a.ns, a.name) < std::tie(b.ns, b.name); });
    return out;
}

}  // namespace knp::host::kube
