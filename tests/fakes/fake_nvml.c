/*
 * A fake NVML (libnvidia-ml.so.1) for qfix's tests.
 *
 * The real nvidia-ml-py (pynvml) loads this library with ctypes exactly as it loads the driver's
 * NVML, looks up each function by name, and checks the return codes, so qfix's whole NVML path
 * runs for real; only the answers are made up. The tests build it with
 *
 *     gcc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1 -o DIR/libnvidia-ml.so.1 fake_nvml.c
 *
 * and put DIR on LD_LIBRARY_PATH of a child process. Signatures and return codes follow nvml.h
 * (NVML API reference, https://docs.nvidia.com/deploy/nvml-api/): every call before nvmlInit
 * answers NVML_ERROR_UNINITIALIZED, a short buffer NVML_ERROR_INSUFFICIENT_SIZE, a bad handle or
 * index NVML_ERROR_INVALID_ARGUMENT.
 *
 * A function that an old driver lacks is left out at compile time, so that the symbol lookup
 * itself fails (pynvml raises NVMLError_FunctionNotFound):
 *     -DNO_CUDA_V2   no nvmlSystemGetCudaDriverVersion_v2 (NVML before CUDA 11.1, driver < 455)
 *     -DNO_CUDA_V1   no nvmlSystemGetCudaDriverVersion    (NVML before CUDA 10.0, driver < 410)
 *     -DNO_COMPUTE_CAPABILITY  no nvmlDeviceGetCudaComputeCapability
 *     -DNO_MIG       no nvmlDeviceGetMigMode              (NVML before CUDA 11.0)
 *     -DNO_INIT_WITH_FLAGS  no nvmlInitWithFlags, which nvidia-ml-py's init calls
 *
 * The answers come from the file named by $FAKE_NVML_CONFIG, read at init, one setting a line
 * ('#' starts a comment):
 *     driver=535.104.05                  nvmlSystemGetDriverVersion
 *     cuda=12020                         nvmlSystemGetCudaDriverVersion(_v2)
 *     init_error=NVML_ERROR_DRIVER_NOT_LOADED   nvmlInit* fails with this code (name or number)
 *     fail=nvmlDeviceGetName:NVML_ERROR_GPU_IS_LOST   any function fails with this code
 *     gpu=NAME|MAJOR|MINOR|MEMORY_MIB|MIG  one line per GPU, in index order;
 *                                        MIG: 0 off, 1 on, na = NVML_ERROR_NOT_SUPPORTED
 * Without $FAKE_NVML_CONFIG, or with a line it cannot read, init fails with NVML_ERROR_UNKNOWN and
 * the reason goes to stderr, so a broken test setup never looks like a working driver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_UNKNOWN 999

#define MAX_GPUS 16
#define MAX_FAILS 32
#define NAME_LEN 96 /* NVML_DEVICE_NAME_V2_BUFFER_SIZE */

typedef struct nvmlDevice_st {
    unsigned int index;
    char name[NAME_LEN];
    int major, minor;
    unsigned long long memory_mib;
    int mig; /* 0, 1, or -1 = not supported */
} *nvmlDevice_t;

typedef struct {
    unsigned long long total, free, used; /* nvmlMemory_t (v1), bytes */
} nvmlMemory_t;

static struct nvmlDevice_st devices[MAX_GPUS];
static unsigned int device_count;
static char driver_version[80] = "";
static int cuda_version = -1; /* -1: not configured -> NVML_ERROR_NOT_SUPPORTED */
static int init_error;
static struct {
    char function[64];
    int code;
} fails[MAX_FAILS];
static int fail_count;
static int init_count; /* nvmlInit/nvmlShutdown are reference counted (nvml.h) */

static const struct {
    const char *name;
    int code;
    const char *text;
} errors[] = {
    {"NVML_SUCCESS", 0, "Success"},
    {"NVML_ERROR_UNINITIALIZED", 1, "Uninitialized"},
    {"NVML_ERROR_INVALID_ARGUMENT", 2, "Invalid Argument"},
    {"NVML_ERROR_NOT_SUPPORTED", 3, "Not Supported"},
    {"NVML_ERROR_NO_PERMISSION", 4, "Insufficient Permissions"},
    {"NVML_ERROR_ALREADY_INITIALIZED", 5, "Already Initialized"},
    {"NVML_ERROR_NOT_FOUND", 6, "Not Found"},
    {"NVML_ERROR_INSUFFICIENT_SIZE", 7, "Insufficient Size"},
    {"NVML_ERROR_INSUFFICIENT_POWER", 8, "Insufficient External Power"},
    {"NVML_ERROR_DRIVER_NOT_LOADED", 9, "Driver Not Loaded"},
    {"NVML_ERROR_TIMEOUT", 10, "Timeout"},
    {"NVML_ERROR_IRQ_ISSUE", 11, "Interrupt Request Issue"},
    {"NVML_ERROR_LIBRARY_NOT_FOUND", 12, "NVML Shared Library Not Found"},
    {"NVML_ERROR_FUNCTION_NOT_FOUND", 13, "Function Not Found"},
    {"NVML_ERROR_CORRUPTED_INFOROM", 14, "Corrupted infoROM"},
    {"NVML_ERROR_GPU_IS_LOST", 15, "GPU is lost"},
    {"NVML_ERROR_RESET_REQUIRED", 16, "GPU requires restart"},
    {"NVML_ERROR_OPERATING_SYSTEM", 17, "The operating system has blocked the request."},
    {"NVML_ERROR_LIB_RM_VERSION_MISMATCH", 18, "RM has detected an NVML/RM version mismatch."},
    {"NVML_ERROR_MEMORY", 20, "Insufficient Memory"},
    {"NVML_ERROR_UNKNOWN", 999, "Unknown Error"},
};

static int error_code(const char *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && *end == '\0') return (int)n;
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (strcmp(errors[i].name, s) == 0) return errors[i].code;
    return -1;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = '\0';
}

static int bad_config(const char *path, const char *line) {
    fprintf(stderr, "fake NVML: cannot read config %s: %s\n", path ? path : "(unset)", line);
    return NVML_ERROR_UNKNOWN;
}

/* Reads $FAKE_NVML_CONFIG; returns the code init should answer. */
static int load_config(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path || !*path) return bad_config(path, "FAKE_NVML_CONFIG is not set");
    FILE *f = fopen(path, "r");
    if (!f) return bad_config(path, "cannot open");
    device_count = 0;
    fail_count = 0;
    init_error = 0;
    cuda_version = -1;
    driver_version[0] = '\0';
    char line[512];
    int rc = NVML_SUCCESS;
    while (fgets(line, sizeof line, f)) {
        chomp(line);
        if (line[0] == '#' || line[0] == '\0') continue;
        char *value = strchr(line, '=');
        if (!value) { rc = bad_config(path, line); break; }
        *value++ = '\0';
        if (strcmp(line, "driver") == 0) {
            snprintf(driver_version, sizeof driver_version, "%s", value);
        } else if (strcmp(line, "cuda") == 0) {
            cuda_version = atoi(value);
        } else if (strcmp(line, "init_error") == 0) {
            if ((init_error = error_code(value)) < 0) { rc = bad_config(path, value); break; }
        } else if (strcmp(line, "fail") == 0) {
            char *colon = strchr(value, ':');
            if (!colon || fail_count == MAX_FAILS) { rc = bad_config(path, value); break; }
            *colon++ = '\0';
            snprintf(fails[fail_count].function, sizeof fails[0].function, "%s", value);
            if ((fails[fail_count].code = error_code(colon)) < 0) {
                rc = bad_config(path, colon);
                break;
            }
            fail_count++;
        } else if (strcmp(line, "gpu") == 0) {
            if (device_count == MAX_GPUS) { rc = bad_config(path, "too many GPUs"); break; }
            struct nvmlDevice_st *d = &devices[device_count];
            char mig[8];
            /* NAME|MAJOR|MINOR|MEMORY_MIB|MIG */
            if (sscanf(value, "%95[^|]|%d|%d|%llu|%7s", d->name, &d->major, &d->minor,
                       &d->memory_mib, mig) != 5) {
                rc = bad_config(path, value);
                break;
            }
            d->mig = strcmp(mig, "na") == 0 ? -1 : atoi(mig);
            d->index = device_count++;
        } else {
            rc = bad_config(path, line);
            break;
        }
    }
    fclose(f);
    return rc;
}

/* The configured failure of `function`, or NVML_SUCCESS. */
static int failure(const char *function) {
    for (int i = 0; i < fail_count; i++)
        if (strcmp(fails[i].function, function) == 0) return fails[i].code;
    return NVML_SUCCESS;
}

#define ENTER(fn)                                           \
    do {                                                    \
        if (init_count == 0) return NVML_ERROR_UNINITIALIZED; \
        int rc_ = failure(fn);                              \
        if (rc_) return rc_;                                \
    } while (0)

static int valid(nvmlDevice_t d) {
    return d >= devices && d < devices + device_count;
}

static nvmlReturn_t do_init(const char *fn) {
    int rc = load_config();
    if (rc) return rc;
    if (init_error) return init_error;
    if ((rc = failure(fn))) return rc;
    init_count++;
    return NVML_SUCCESS;
}

/* nvidia-ml-py calls nvmlInitWithFlags (its nvmlInit too); older releases call nvmlInit_v2. */
#ifndef NO_INIT_WITH_FLAGS
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return do_init("nvmlInitWithFlags"); }
#endif
nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }
nvmlReturn_t nvmlInit(void) { return do_init("nvmlInit"); }

nvmlReturn_t nvmlShutdown(void) {
    ENTER("nvmlShutdown");
    init_count--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == result) return errors[i].text;
    return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    ENTER("nvmlSystemGetDriverVersion");
    if (!version) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(driver_version) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(version, driver_version);
    return NVML_SUCCESS;
}

__attribute__((unused)) static nvmlReturn_t cuda_driver_version(const char *fn, int *v) {
    ENTER(fn);
    if (!v) return NVML_ERROR_INVALID_ARGUMENT;
    if (cuda_version < 0) return NVML_ERROR_NOT_SUPPORTED;
    *v = cuda_version;
    return NVML_SUCCESS;
}

#ifndef NO_CUDA_V1
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    return cuda_driver_version("nvmlSystemGetCudaDriverVersion", v);
}
#endif

#ifndef NO_CUDA_V2
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
    return cuda_driver_version("nvmlSystemGetCudaDriverVersion_v2", v);
}
#endif

static nvmlReturn_t device_count_(const char *fn, unsigned int *count) {
    ENTER(fn);
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    *count = device_count;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c) { return device_count_("nvmlDeviceGetCount_v2", c); }
nvmlReturn_t nvmlDeviceGetCount(unsigned int *c) { return device_count_("nvmlDeviceGetCount", c); }

static nvmlReturn_t handle_by_index(const char *fn, unsigned int index, nvmlDevice_t *device) {
    ENTER(fn);
    if (!device || index >= device_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    return handle_by_index("nvmlDeviceGetHandleByIndex_v2", i, d);
}
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *d) {
    return handle_by_index("nvmlDeviceGetHandleByIndex", i, d);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    ENTER("nvmlDeviceGetIndex");
    if (!valid(device) || !index) return NVML_ERROR_INVALID_ARGUMENT;
    *index = device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    ENTER("nvmlDeviceGetName");
    if (!valid(device) || !name) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(device->name) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(name, device->name);
    return NVML_SUCCESS;
}

#ifndef NO_COMPUTE_CAPABILITY
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    ENTER("nvmlDeviceGetCudaComputeCapability");
    if (!valid(device) || !major || !minor) return NVML_ERROR_INVALID_ARGUMENT;
    *major = device->major;
    *minor = device->minor;
    return NVML_SUCCESS;
}
#endif

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    ENTER("nvmlDeviceGetMemoryInfo");
    if (!valid(device) || !memory) return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = device->memory_mib * 1024ULL * 1024ULL;
    memory->used = memory->total / 100; /* a little in use, as on a real idle GPU */
    memory->free = memory->total - memory->used;
    return NVML_SUCCESS;
}

#ifndef NO_MIG
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    ENTER("nvmlDeviceGetMigMode");
    if (!valid(device) || !current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->mig < 0) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)device->mig;
    return NVML_SUCCESS;
}
#endif
