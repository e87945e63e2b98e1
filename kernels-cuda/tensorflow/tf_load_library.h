/*
 * tf_load_library.h: loadTensorFlowLibrary(libtensorflowSoname, opLibraryPath) -> {ok, message},
 * the one Node-API function that loads our op library into the TensorFlow that
 * @tensorflow/tfjs-node(-gpu) already mapped into this process. Included by both addons:
 * karat_tf_load.node (CPU only) and karat_cuda.node (addon/karat_addon.c).
 *
 * dlopen with RTLD_NOLOAD finds that libtensorflow (it never loads a second TensorFlow), and
 * TF_LoadLibrary registers the library's ops and kernels with it, so tfjs-node's eager context
 * can run them by name. The few TensorFlow C API entry points used are resolved at run time, so
 * no TensorFlow header is needed.
 */
#ifndef KARAT_TF_LOAD_LIBRARY_H_
#define KARAT_TF_LOAD_LIBRARY_H_

#include <dlfcn.h>
#include <node_api.h>
#include <stdio.h>

typedef struct TF_Status TF_Status;
typedef struct TF_Library TF_Library;
typedef TF_Status* (*NewStatusFn)(void);
typedef void (*DeleteStatusFn)(TF_Status*);
typedef int (*GetCodeFn)(const TF_Status*);
typedef const char* (*MessageFn)(const TF_Status*);
typedef TF_Library* (*LoadLibraryFn)(const char*, TF_Status*);

static napi_value tfLoadResult(napi_env env, int ok, const char* message) {
  napi_value out, okv, msg;
  napi_create_object(env, &out);
  napi_get_boolean(env, ok != 0, &okv);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_set_named_property(env, out, "ok", okv);
  napi_set_named_property(env, out, "message", msg);
  return out;
}

static napi_value LoadTensorFlowLibrary(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2)
    return tfLoadResult(env, 0, "loadTensorFlowLibrary(libtensorflowSoname, opLibraryPath) needs 2 arguments");
  char tfPath[4096], opPath[4096];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], tfPath, sizeof tfPath, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], opPath, sizeof opPath, &len) != napi_ok)
    return tfLoadResult(env, 0, "both arguments must be strings");
  void* tf = dlopen(tfPath, RTLD_NOW | RTLD_NOLOAD);
  if (!tf) {
    char msg[4600];
    snprintf(msg, sizeof msg, "libtensorflow is not loaded in this process (%s): load @tensorflow/tfjs-node "
             "first; dlerror: %s", tfPath, dlerror());
    return tfLoadResult(env, 0, msg);
  }
  /* dlsym on the handle also searches its dependencies (libtensorflow_framework.so.2). */
  NewStatusFn newStatus = (NewStatusFn)dlsym(tf, "TF_NewStatus");
  DeleteStatusFn deleteStatus = (DeleteStatusFn)dlsym(tf, "TF_DeleteStatus");
  GetCodeFn getCode = (GetCodeFn)dlsym(tf, "TF_GetCode");
  MessageFn message = (MessageFn)dlsym(tf, "TF_Message");
  LoadLibraryFn loadLibrary = (LoadLibraryFn)dlsym(tf, "TF_LoadLibrary");
  if (!newStatus || !deleteStatus || !getCode || !message || !loadLibrary) {
    dlclose(tf);
    return tfLoadResult(env, 0, "libtensorflow lacks TF_LoadLibrary / TF_Status functions");
  }
  TF_Status* status = newStatus();
  TF_Library* lib = loadLibrary(opPath, status);
  const int ok = lib != NULL && getCode(status) == 0;
  char msg[4600];
  snprintf(msg, sizeof msg, ok ? "loaded %s" : "TF_LoadLibrary(%s) failed: %s", opPath, ok ? "" : message(status));
  deleteStatus(status);
  /* libtensorflow stays referenced: the registered kernels live as long as the process. */
  return tfLoadResult(env, ok, msg);
}

#endif  /* KARAT_TF_LOAD_LIBRARY_H_ */
