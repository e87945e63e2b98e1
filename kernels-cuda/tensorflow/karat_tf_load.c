/*
 * karat_tf_load.node: a Node-API addon with one function, for the CPU-only route (no CUDA):
 *
 *   loadTensorFlowLibrary(libtensorflowSoname, opLibraryPath) -> {ok, message}
 *
 * The function itself is in tf_load_library.h, shared with karat_cuda.node (addon/karat_addon.c);
 * this addon carries it without the CUDA runtime.
 */
#define NAPI_VERSION 8
#include "tf_load_library.h"

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"loadTensorFlowLibrary", NULL, LoadTensorFlowLibrary, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
