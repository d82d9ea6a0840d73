"""ctypes bindings for the part of cuDNN 9 lstmgen uses: one prototype table, every status checked.

A function is looked up in the library on first use, so a missing library or symbol fails only
when something calls it, with a message that says how to install cuDNN 9.
"""

import ctypes
from ctypes import POINTER, c_char_p, c_float, c_int, c_size_t, c_uint32, c_ulonglong, c_void_p

from lstmgen.cudnn.library import INSTALL_HINT, CudnnUnavailable, load

# Values of the enums lstmgen passes (cudnn_graph.h and cudnn_adv.h of cuDNN 9).
DATA_FLOAT, DATA_DOUBLE = 0, 1  # cudnnDataType_t
DEFAULT_MATH, FMA_MATH = 0, 3  # cudnnMathType_t
RNN_ALGO_STANDARD = 0  # cudnnRNNAlgo_t
LSTM = 2  # cudnnRNNMode_t
RNN_DOUBLE_BIAS = 2  # cudnnRNNBiasMode_t
UNIDIRECTIONAL = 0  # cudnnDirectionMode_t
LINEAR_INPUT = 0  # cudnnRNNInputMode_t
FWD_MODE_INFERENCE, FWD_MODE_TRAINING = 0, 1  # cudnnForwardMode_t
RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED = 2  # cudnnRNNDataLayout_t
RNN_PADDED_IO_ENABLED = 1  # auxFlags of cudnnSetRNNDescriptor_v8

status_t = c_int  # cudnnStatus_t; 0 is CUDNN_STATUS_SUCCESS
# Handles and descriptors are opaque pointers; enums are ints.
handle_t = c_void_p
enum_t = c_int
int_p = POINTER(c_int)

# name: (restype, argtypes). Functions returning status_t raise CudnnError unless it is 0.
PROTOTYPES = {
    # size_t cudnnGetVersion(void);
    "cudnnGetVersion": (c_size_t, ()),
    # const char *cudnnGetErrorString(cudnnStatus_t status);
    "cudnnGetErrorString": (c_char_p, (status_t,)),
    # cudnnStatus_t cudnnCreate(cudnnHandle_t *handle);
    "cudnnCreate": (status_t, (POINTER(handle_t),)),
    # cudnnStatus_t cudnnDestroy(cudnnHandle_t handle);
    "cudnnDestroy": (status_t, (handle_t,)),
    # cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc);
    "cudnnCreateTensorDescriptor": (status_t, (POINTER(handle_t),)),
    # cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc);
    "cudnnDestroyTensorDescriptor": (status_t, (handle_t,)),
    # cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t tensorDesc,
    #     cudnnDataType_t dataType, int nbDims, const int dimA[], const int strideA[]);
    "cudnnSetTensorNdDescriptor": (status_t, (handle_t, enum_t, c_int, int_p, int_p)),
    # cudnnStatus_t cudnnGetTensorNdDescriptor(const cudnnTensorDescriptor_t tensorDesc,
    #     int nbDimsRequested, cudnnDataType_t *dataType, int *nbDims, int dimA[], int strideA[]);
    "cudnnGetTensorNdDescriptor": (status_t, (handle_t, c_int, int_p, int_p, int_p, int_p)),
    # cudnnStatus_t cudnnCreateDropoutDescriptor(cudnnDropoutDescriptor_t *dropoutDesc);
    "cudnnCreateDropoutDescriptor": (status_t, (POINTER(handle_t),)),
    # cudnnStatus_t cudnnDestroyDropoutDescriptor(cudnnDropoutDescriptor_t dropoutDesc);
    "cudnnDestroyDropoutDescriptor": (status_t, (handle_t,)),
    # cudnnStatus_t cudnnSetDropoutDescriptor(cudnnDropoutDescriptor_t dropoutDesc,
    #     cudnnHandle_t handle, float dropout, void *states, size_t stateSizeInBytes,
    #     unsigned long long seed);
    "cudnnSetDropoutDescriptor": (status_t, (handle_t, handle_t, c_float, c_void_p, c_size_t,
                                             c_ulonglong)),
    # cudnnStatus_t cudnnCreateRNNDescriptor(cudnnRNNDescriptor_t *rnnDesc);
    "cudnnCreateRNNDescriptor": (status_t, (POINTER(handle_t),)),
    # cudnnStatus_t cudnnDestroyRNNDescriptor(cudnnRNNDescriptor_t rnnDesc);
    "cudnnDestroyRNNDescriptor": (status_t, (handle_t,)),
    # cudnnStatus_t cudnnSetRNNDescriptor_v8(cudnnRNNDescriptor_t rnnDesc, cudnnRNNAlgo_t algo,
    #     cudnnRNNMode_t cellMode, cudnnRNNBiasMode_t biasMode, cudnnDirectionMode_t dirMode,
    #     cudnnRNNInputMode_t inputMode, cudnnDataType_t dataType, cudnnDataType_t mathPrec,
    #     cudnnMathType_t mathType, int32_t inputSize, int32_t hiddenSize, int32_t projSize,
    #     int32_t numLayers, cudnnDropoutDescriptor_t dropoutDesc, uint32_t auxFlags);
    "cudnnSetRNNDescriptor_v8": (status_t, (handle_t,) + (enum_t,) * 8 + (c_int,) * 4
                                 + (handle_t, c_uint32)),
    # cudnnStatus_t cudnnCreateRNNDataDescriptor(cudnnRNNDataDescriptor_t *rnnDataDesc);
    "cudnnCreateRNNDataDescriptor": (status_t, (POINTER(handle_t),)),
    # cudnnStatus_t cudnnDestroyRNNDataDescriptor(cudnnRNNDataDescriptor_t rnnDataDesc);
    "cudnnDestroyRNNDataDescriptor": (status_t, (handle_t,)),
    # cudnnStatus_t cudnnSetRNNDataDescriptor(cudnnRNNDataDescriptor_t rnnDataDesc,
    #     cudnnDataType_t dataType, cudnnRNNDataLayout_t layout, int maxSeqLength, int batchSize,
    #     int vectorSize, const int seqLengthArray[], void *paddingFill);
    "cudnnSetRNNDataDescriptor": (status_t, (handle_t, enum_t, enum_t, c_int, c_int, c_int, int_p,
                                             c_void_p)),
    # cudnnStatus_t cudnnGetRNNWeightSpaceSize(cudnnHandle_t handle, cudnnRNNDescriptor_t rnnDesc,
    #     size_t *weightSpaceSize);
    "cudnnGetRNNWeightSpaceSize": (status_t, (handle_t, handle_t, POINTER(c_size_t))),
    # cudnnStatus_t cudnnGetRNNTempSpaceSizes(cudnnHandle_t handle, cudnnRNNDescriptor_t rnnDesc,
    #     cudnnForwardMode_t fwdMode, cudnnRNNDataDescriptor_t xDesc, size_t *workSpaceSize,
    #     size_t *reserveSpaceSize);
    "cudnnGetRNNTempSpaceSizes": (status_t, (handle_t, handle_t, enum_t, handle_t,
                                             POINTER(c_size_t), POINTER(c_size_t))),
    # cudnnStatus_t cudnnGetRNNWeightParams(cudnnHandle_t handle, cudnnRNNDescriptor_t rnnDesc,
    #     int32_t pseudoLayer, size_t weightSpaceSize, const void *weightSpace, int32_t linLayerID,
    #     cudnnTensorDescriptor_t mDesc, void **mAddr, cudnnTensorDescriptor_t bDesc, void **bAddr);
    "cudnnGetRNNWeightParams": (status_t, (handle_t, handle_t, c_int, c_size_t, c_void_p, c_int,
                                           handle_t, POINTER(c_void_p), handle_t,
                                           POINTER(c_void_p))),
    # cudnnStatus_t cudnnRNNForward(cudnnHandle_t handle, cudnnRNNDescriptor_t rnnDesc,
    #     cudnnForwardMode_t fwdMode, const int32_t devSeqLengths[],
    #     cudnnRNNDataDescriptor_t xDesc, const void *x, cudnnRNNDataDescriptor_t yDesc, void *y,
    #     cudnnTensorDescriptor_t hDesc, const void *hx, void *hy,
    #     cudnnTensorDescriptor_t cDesc, const void *cx, void *cy,
    #     size_t weightSpaceSize, const void *weightSpace, size_t workSpaceSize, void *workSpace,
    #     size_t reserveSpaceSize, void *reserveSpace);
    "cudnnRNNForward": (status_t, (handle_t, handle_t, enum_t, c_void_p,
                                   handle_t, c_void_p, handle_t, c_void_p,
                                   handle_t, c_void_p, c_void_p,
                                   handle_t, c_void_p, c_void_p,
                                   c_size_t, c_void_p, c_size_t, c_void_p, c_size_t, c_void_p)),
}


class CudnnError(RuntimeError):
    """A cuDNN call returned an error status; carries cudnnGetErrorString's text."""

    def __init__(self, function: str, status: int, message: str):
        self.function = function
        self.status = status
        super().__init__(f"{function} failed with {message} (status {status})")


class _Api:
    """cuDNN's functions as attributes, bound on first use from PROTOTYPES."""

    def __init__(self):
        self._bound = {}

    def __getattr__(self, name: str):
        if name not in PROTOTYPES:
            raise AttributeError(f"{name} is not in lstmgen's cuDNN prototype table")
        function = self._bound.get(name)
        if function is None:
            function = self._bound[name] = _bind(name)
        return function


def _bind(name: str):
    library = load()
    try:
        function = library[name]  # a fresh pointer: the library's cached attributes stay untouched
    except AttributeError:
        raise CudnnUnavailable(f"{name} is missing from the cuDNN library that was loaded "
                               f"({library._name}); lstmgen needs cuDNN 9.x: {INSTALL_HINT}") from None
    function.restype, function.argtypes = PROTOTYPES[name]
    if function.restype is status_t:
        function.errcheck = _checker(name)
    return function


def _checker(name: str):
    def check(status, _function, _args):
        if status != 0:
            raise CudnnError(name, status, api.cudnnGetErrorString(status).decode())
        return status
    return check


def int_array(values) -> ctypes.Array:
    """A C int[] holding `values`."""
    values = [int(v) for v in values]
    return (c_int * len(values))(*values)


api = _Api()
