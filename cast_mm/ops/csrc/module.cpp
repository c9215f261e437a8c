// The Python module cast_mm.ops._C: importing it registers the operators of this folder
// (torch.ops.cast_mm.*); it defines no Python functions of its own.
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr,
                                      nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
}
