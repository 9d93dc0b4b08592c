// json_text.hpp: JSON text of the request endpoints (query, control, ingest): their replies,
// and a client's value quoted back in an error.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ews {

// Compact JSON text; invalid UTF-8 inside strings is replaced, never thrown on. A template so
// that nlohmann::json and nlohmann::ordered_json are written as they are (converting one to
// the other copies it recursively).
template <typename Json>
std::string json_text(const Json& j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// A client's value as an error message quotes it: a scalar as JSON ("got 7", "got null"), an
// array or object by its type only ("got an array"). Writing a nested value out recurses once
// per level, and a request of a few hundred KB can nest deep enough to overflow the stack;
// parsing and freeing such a value do not recurse.
template <typename Json>
std::string quoted_value(const Json& j) {
    return j.is_structured() ? std::string("an ") + j.type_name() : json_text(j);
}

}  // namespace ews
