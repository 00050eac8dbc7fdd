// N-API argument unpacking shared by the native addons (native/packet, native/relay): the same few steps,
// written once. Each returns false (or the default) rather than throwing, so the caller throws with a
// message that names its own call and argument.
#pragma once

#include <node_api.h>

#include <string>
#include <vector>

namespace napi_args {

inline napi_value throwError(napi_env env, const char* msg, const char* code = nullptr) {
  napi_throw_error(env, code, msg);
  return nullptr;
}
inline napi_value throwError(napi_env env, const std::string& msg) {
  return throwError(env, msg.c_str());
}

// The call's first `want` arguments into argv; false when fewer were passed.
inline bool args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  return argc >= want;
}

inline bool u32(napi_env env, napi_value v, uint32_t* out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

inline bool string(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  std::string s(len, '\0');
  if (napi_get_value_string_utf8(env, v, s.data(), len + 1, &len) != napi_ok) return false;
  *out = s;
  return true;
}

// obj[key] as an array of strings appended to out; true when absent, false when not such an array.
inline bool namedStrings(napi_env env, napi_value obj, const char* key, std::vector<std::string>* out) {
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return true;
  napi_value arr;
  bool isArr = false;
  if (napi_get_named_property(env, obj, key, &arr) != napi_ok) return false;
  napi_is_array(env, arr, &isArr);
  if (!isArr) return false;
  uint32_t n = 0;
  napi_get_array_length(env, arr, &n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    std::string s;
    if (!string(env, e, &s)) return false;
    out->push_back(s);
  }
  return true;
}

// obj[key] as a uint32, or dflt when absent or not a number.
inline uint32_t namedU32(napi_env env, napi_value obj, const char* key, uint32_t dflt) {
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return dflt;
  napi_value v;
  napi_get_named_property(env, obj, key, &v);
  uint32_t r = dflt;
  if (napi_get_value_uint32(env, v, &r) != napi_ok) return dflt;
  return r;
}

inline void setNumber(napi_env env, napi_value obj, const char* key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

}  // namespace napi_args
