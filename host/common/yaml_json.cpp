#include "common/yaml_json.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace knp::host {

namespace json = boost::json;

int yamlLine(const YAML::Node& node) noexcept {
    try {
        return node.Mark().line + 1;
    } catch (...) {
        return 0;
    }
}

namespace {

Result<std::vector<YAML::Node>> loadFrom(std::istream& in, std::string_view name) {
    try {
        std::vector<YAML::Node> docs = YAML::LoadAll(in);
        return docs;
    } catch (const YAML::Exception& e) {
        return makeError("{}:{}:{}: invalid YAML: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg);
    }
}

std::optional<json::value> plainScalar(const std::string& s) {
    if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return json::value(nullptr);
    if (s == "true" || s == "True" || s == "TRUE") return json::value(true);
    if (s == "false" || s == "False" || s == "FALSE") return json::value(false);
    // Integers: decimal with optional sign, 0o octal, 0x hex (YAML 1.2 core schema).
    {
        std::string_view v = s;
        int base = 10;
        bool neg = false;
        if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
            neg = v[0] == '-';
            v.remove_prefix(1);
        }
        if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'o')) {
            base = v[1] == 'x' ? 16 : 8;
            v.remove_prefix(2);
        }
        if (!v.empty()) {
            int64_t out = 0;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out, base);
            if (ec == std::errc() && p == v.data() + v.size()) return json::value(neg ? -out : out);
        }
    }
    // Floats: [-+]?(.digits|digits(.digits*)?)([eE][-+]?digits)?, .inf, .nan.
    if (s == ".inf" || s == "+.inf" || s == ".Inf" || s == ".INF")
        return json::value(std::numeric_limits<double>::infinity());
    if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return json::value(-std::numeric_limits<double>::infinity());
    {
        size_t i = 0;
        if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
        size_t digits = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
        if (i < s.size() && s[i] == '.') {
            ++i;
            while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
        }
        if (digits > 0 && i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
            ++i;
            if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
            size_t exp = 0;
            while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp;
            if (exp == 0) digits = 0;
        }
        if (digits > 0 && i == s.size()) return json::value(std::strtod(s.c_str(), nullptr));
    }
    return std::nullopt;
}

}  // namespace

Result<std::vector<YAML::Node>> loadYamlFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) return makeError("{}: cannot open: {}", path, std::strerror(errno));
    return loadFrom(in, path);
}

Result<std::vector<YAML::Node>> loadYamlString(std::string_view text, std::string_view name) {
    std::istringstream in{std::string(text)};
    return loadFrom(in, name);
}

Result<json::value> yamlToJson(const YAML::Node& node, std::string_view file) {
    switch (node.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null:
            return json::value(nullptr);
        case YAML::NodeType::Scalar: {
            const std::string& s = node.Scalar();
            const std::string& tag = node.Tag();
            if (tag == "!" || tag == "tag:yaml.org,2002:str") return json::value(s);
            if (tag == "?" || tag.empty()) {
                if (auto v = plainScalar(s)) return *v;
                return json::value(s);
            }
            if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" || tag == "tag:yaml.org,2002:bool" ||
                tag == "tag:yaml.org,2002:null") {
                if (auto v = plainScalar(s)) return *v;
                return makeError("{}:{}: value {:?} does not match its tag {}", file, yamlLine(node), s, tag);
            }
            return makeError("{}:{}: unsupported YAML tag {}", file, yamlLine(node), tag);
        }
        case YAML::NodeType::Sequence: {
            json::array arr;
            arr.reserve(node.size());
            for (const YAML::Node& item : node) {
                auto v = yamlToJson(item, file);
                if (!v) return std::move(v).error();
                arr.push_back(std::move(*v));
            }
            return json::value(std::move(arr));
        }
        case YAML::NodeType::Map: {
            json::object obj;
            for (const auto& kv : node) {
                if (!kv.first.IsScalar())
                    return makeError("{}:{}: mapping keys must be strings", file, yamlLine(kv.first));
                const std::string& key = kv.first.Scalar();
                if (obj.contains(key)) return makeError("{}:{}: duplicate key {:?}", file, yamlLine(kv.first), key);
                auto v = yamlToJson(kv.second, file);
                if (!v) return std::move(v).error();
                obj.emplace(key, std::move(*v));
            }
            return json::value(std::move(obj));
        }
    }
    return json::value(nullptr);
}

std::optional<YAML::Node> yamlAtPointer(const YAML::Node& root, std::string_view pointer) {
    YAML::Node cur = root;
    while (!pointer.empty()) {
        if (pointer[0] != '/') return std::nullopt;
        pointer.remove_prefix(1);
        size_t end = pointer.find('/');
        std::string token(pointer.substr(0, end));
        pointer = end == std::string_view::npos ? std::string_view() : pointer.substr(end);
        // RFC 6901 unescaping.
        for (size_t p; (p = token.find("~1")) != std::string::npos;) token.replace(p, 2, "/");
        for (size_t p; (p = token.find("~0")) != std::string::npos;) token.replace(p, 2, "~");
        if (cur.IsMap()) {
            YAML::Node next;
            bool found = false;
            for (const auto& kv : cur) {
                if (kv.first.IsScalar() && kv.first.Scalar() == token) {
                    next.reset(kv.second);
                    found = true;
                    break;
                }
            }
            if (!found) return std::nullopt;
            // Node::operator= writes through to the referenced node; reset() rebinds.
            cur.reset(next);
        } else if (cur.IsSequence()) {
            size_t idx = 0;
            auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), idx);
            if (ec != std::errc() || p != token.data() + token.size() || idx >= cur.size()) return std::nullopt;
            YAML::Node item = cur[idx];
            cur.reset(item);
        } else {
            return std::nullopt;
        }
    }
    return cur;
}

}  // namespace knp::host
