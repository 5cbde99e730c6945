// The PATCH flavours of the API on plain JSON: RFC 7386 merge patch, RFC 6902 JSON patch, a
// strategic merge patch subset, and the merge server-side apply performs here.
// THREAD: pure functions.
#pragma once

#include <string>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "common/result.hpp"

namespace knp::lab {

// RFC 7386: objects merge, null deletes, everything else (lists included) replaces.
void mergePatch(boost::json::value& target, const boost::json::value& patch);

// RFC 6902: add, remove, replace, move, copy, test. On error `target` may be half patched; the
// caller works on a copy.
host::Status jsonPatch(boost::json::value& target, const boost::json::array& ops);

// Strategic merge patch as kubectl sends it: merge patch plus the directives ($patch,
// $retainKeys, $setElementOrder/…, $deleteFromPrimitiveList/…), with lists of objects merged by
// their key (containers by name, ports by containerPort, …) when `keyedLists` (built-in kinds;
// CRD lists are atomic) and metadata.finalizers merged as a set.
void strategicMerge(boost::json::value& target, const boost::json::value& patch, bool keyedLists);

// Server-side apply, simplified: the applied configuration is merged into the live object like
// a strategic merge (no field ownership, so fields a manager stops applying are kept).
void applyMerge(boost::json::value& target, const boost::json::value& applied, bool keyedLists);

}  // namespace knp::lab
