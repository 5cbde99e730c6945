// Plugin instances described the same way by `knpctl plugins` (a pipeline it loads itself)
// and by knpd (the pipeline it runs, over the control socket), and printed from that JSON.
//
// THREAD: describeInstance on the thread that owns the instance; the rest are pure.
#pragma once

#include <string>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "plugins/instance.hpp"

namespace knp::host {

// {"instance","plugin","library","version","abi","capabilities","onError","watches":[...]}
boost::json::object describeInstance(const PluginInstance& instance);

// The `knpctl plugins` table of such objects (header line included).
std::string formatInstanceTable(const boost::json::array& instances);

}  // namespace knp::host
