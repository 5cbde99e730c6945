#include "protobuf.hpp"

#include <cstdint>
#include <optional>

#include <boost/json/array.hpp>

namespace knp::lab {

namespace json = boost::json;

namespace {

// One field of a protobuf message: its number and, for length-delimited fields, the bytes.
struct Field {
    std::uint32_t number;
    std::uint32_t wireType;
    std::uint64_t varint;
    std::string_view bytes;
};

class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}
    bool done() const { return pos_ >= data_.size(); }

    std::optional<Field> next() {
        auto key = varint();
        if (!key) return std::nullopt;
        Field f{static_cast<std::uint32_t>(*key >> 3), static_cast<std::uint32_t>(*key & 7), 0, {}};
        switch (f.wireType) {
            case 0: {
                auto v = varint();
                if (!v) return std::nullopt;
                f.varint = *v;
                return f;
            }
            case 1:
                return skip(8) ? std::optional(f) : std::nullopt;
            case 5:
                return skip(4) ? std::optional(f) : std::nullopt;
            case 2: {
                auto len = varint();
                if (!len || *len > data_.size() - pos_) return std::nullopt;
                f.bytes = data_.substr(pos_, *len);
                pos_ += *len;
                return f;
            }
        }
        return std::nullopt;
    }

private:
    std::optional<std::uint64_t> varint() {
        std::uint64_t v = 0;
        for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
            auto b = static_cast<unsigned char>(data_[pos_++]);
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
        }
        return std::nullopt;
    }
    bool skip(std::size_t n) {
        if (n > data_.size() - pos_) return false;
        pos_ += n;
        return true;
    }

    std::string_view data_;
    std::size_t pos_ = 0;
};

bool readMapEntry(std::string_view bytes, json::object& into) {
    Reader r(bytes);
    std::string key, value;
    while (!r.done()) {
        auto f = r.next();
        if (!f) return false;
        if (f->number == 1) key = f->bytes;
        if (f->number == 2) value = f->bytes;
    }
    into[key] = value;
    return true;
}

host::Result<json::object> objectMeta(std::string_view bytes) {
    json::object meta;
    json::object labels, annotations;
    json::array finalizers;
    Reader r(bytes);
    while (!r.done()) {
        auto f = r.next();
        if (!f) return host::makeError("malformed ObjectMeta");
        if (f->wireType != 2 || (f->bytes.empty() && f->number != 11 && f->number != 12)) continue;
        switch (f->number) {
            case 1:
                meta["name"] = f->bytes;
                break;
            case 2:
                meta["generateName"] = f->bytes;
                break;
            case 3:
                meta["namespace"] = f->bytes;
                break;
            case 6:
                meta["resourceVersion"] = f->bytes;
                break;
            case 11:
                if (!readMapEntry(f->bytes, labels)) return host::makeError("malformed labels");
                break;
            case 12:
                if (!readMapEntry(f->bytes, annotations)) return host::makeError("malformed annotations");
                break;
            case 14:
                finalizers.push_back(json::string(f->bytes));
                break;
            default:
                break;  // server-set fields; ignored as on create
        }
    }
    if (!labels.empty()) meta["labels"] = std::move(labels);
    if (!annotations.empty()) meta["annotations"] = std::move(annotations);
    if (!finalizers.empty()) meta["finalizers"] = std::move(finalizers);
    return meta;
}

}  // namespace

host::Result<json::object> decodeProtobufObject(std::string_view body) {
    if (body.size() < 4 || body.substr(0, 4) != std::string_view("k8s\0", 4))
        return host::makeError("not a Kubernetes protobuf envelope");
    Reader env(body.substr(4));
    std::string apiVersion, kind;
    std::string_view raw;
    while (!env.done()) {
        auto f = env.next();
        if (!f) return host::makeError("malformed protobuf envelope");
        if (f->number == 1 && f->wireType == 2) {
            Reader tm(f->bytes);
            while (!tm.done()) {
                auto t = tm.next();
                if (!t) return host::makeError("malformed TypeMeta");
                if (t->number == 1) apiVersion = t->bytes;
                if (t->number == 2) kind = t->bytes;
            }
        } else if (f->number == 2 && f->wireType == 2) {
            raw = f->bytes;
        }
    }
    if (apiVersion != "v1" || kind != "Namespace")
        return host::makeError("protobuf bodies are read for v1 Namespace only, not {} {}; send JSON", apiVersion,
                               kind);
    json::object obj{{"apiVersion", apiVersion}, {"kind", kind}};
    Reader r(raw);
    while (!r.done()) {
        auto f = r.next();
        if (!f) return host::makeError("malformed Namespace");
        if (f->wireType != 2) continue;
        if (f->number == 1) {
            auto meta = objectMeta(f->bytes);
            if (!meta) return meta.error();
            obj["metadata"] = std::move(meta.value());
        } else if (f->number == 2) {  // NamespaceSpec{repeated string finalizers = 1}
            json::array fin;
            Reader s(f->bytes);
            while (!s.done()) {
                auto x = s.next();
                if (!x) return host::makeError("malformed NamespaceSpec");
                if (x->number == 1) fin.push_back(json::string(x->bytes));
            }
            obj["spec"] = json::object{{"finalizers", std::move(fin)}};
        }
    }
    return obj;
}

}  // namespace knp::lab
