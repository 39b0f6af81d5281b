# What the Python runtime (ledgerflow.r, through rpy2) calls to run R steps: load a
# flow's script without running it, make a step's `self` and `inputs`, call the step.

load_flow <- function(script) {
  if (grepl("\\.RDS$", script)) return(load_session_flow(script))
  old <- options(ledgerflow.load_only = TRUE)
  on.exit(options(old), add = TRUE)
  state$flow <- NULL
  suppressPackageStartupMessages(
    source(script, local = new.env(parent = globalenv()), chdir = TRUE)
  )
  if (is.null(state$flow)) {
    stop(sprintf("%s never calls run(): end its flow with %%>%% run()", script), call. = FALSE)
  }
  state$flow
}

# A flow run() saved from a session (see save_session_flow()): attach the packages the
# session had attached, put the session's objects the steps use in the global
# environment (where the step functions look them up, as in the session), then the flow.
load_session_flow <- function(file) {
  saved <- readRDS(file)
  for (package in saved$packages) {
    tryCatch(
      suppressPackageStartupMessages(library(package, character.only = TRUE)),
      error = function(e) {
        stop(sprintf(paste0("the R session that ran %s had package '%s' attached, which ",
                            "this R cannot load (%s): install it where the flow runs"),
                     saved$flow$name, package, conditionMessage(e)), call. = FALSE)
      }
    )
  }
  list2env(saved$globals, envir = globalenv())
  state$flow <- saved$flow
  state$flow
}

# Run once by the runtime after load_flow(), before it forks a process per task: what
# each task would otherwise do again for itself (load jsonlite, load the package's
# functions from its lazy-load database, byte-compile a step's function on its first
# call) done here once, and inherited.
warm_up <- function(flow) {
  run_task("warm_up", function(self) self$x <- 1, character(), function(source, name) NULL)
  task_facts()
  rm("facts", "json", envir = .task)  # no task runs here: current() is NULL
  for (name in names(flow$steps)) {
    fn <- flow$steps[[name]]$r_function
    if (typeof(fn) == "closure") {
      flow$steps[[name]]$r_function <- tryCatch(compiler::cmpfun(fn), error = function(e) fn)
    }
  }
  flow
}

# What the runtime's loader answers when reading an artifact failed (a Python function
# R calls cannot raise into R): raised here as an R error, never read as NULL.
checked <- function(value) {
  if (inherits(value, "ledgerflow_failure")) stop(value$message, call. = FALSE)
  value
}

# A step's `self`: an environment whose artifacts load on first use
# (`loader(source, name)`: source 0 is the task, i its i-th input) and which remembers
# what the step sets. `input_of` (artifact, index): the foreach item.
make_self <- function(names, loader, source = 0L, input_of = NULL, merge = NULL) {
  self <- new.env(parent = emptyenv())
  # `self$name` of an artifact that does not exist is an error, as in a Python step.
  class(self) <- "ledgerflow_self"
  changed <- new.env(parent = emptyenv())
  attr(self, "ledgerflow_changed") <- changed
  load <- function(name) checked(loader(source, name))
  for (name in names) bind_lazy(self, name, load, changed)
  if (!is.null(input_of)) {
    artifact <- input_of[[1]]
    index <- input_of[[2]]
    makeActiveBinding("input", function(value) {
      if (!missing(value)) {
        stop("self$input is this task's foreach item: store values under another name",
             call. = FALSE)
      }
      get(artifact, envir = self)[[index + 1]]
    }, self)
  }
  if (!is.null(merge)) {
    attr(self, "ledgerflow_merge") <- function(exclude, include, already) {
      merged <- checked(merge(exclude, include, already))
      for (name in merged) bind_lazy(self, name, load, changed)
    }
  }
  self
}

# The running task's facts (set by the runtime before each step; see current()).
.task <- new.env(parent = emptyenv())

set_current <- function(facts) {
  # Kept as JSON, parsed when current() first asks: most steps never do.
  assign("json", facts, envir = .task)
  if (exists("facts", envir = .task, inherits = FALSE)) rm("facts", envir = .task)
  invisible()
}

task_facts <- function() {
  if (exists("facts", envir = .task, inherits = FALSE)) return(get("facts", envir = .task))
  if (!exists("json", envir = .task, inherits = FALSE)) return(NULL)
  facts <- jsonlite::fromJSON(get("json", envir = .task), simplifyVector = TRUE)
  assign("facts", facts, envir = .task)
  facts
}

#' Facts about the running task
#'
#' As `current` in a Python step (and Metaflow R's `current()`): `current()` gives
#' them all as a list, `current("run_id")` one of them: `flow_name`, `run_id`,
#' `step_name`, `task_id`, `retry_count`, `username`, `namespace`, `tags`,
#' `origin_run_id`, `project_name`, `branch_name`, `is_production`. Outside a running
#' step, `current()` is `NULL`.
#'
#' @param value A fact's name; none: all of them.
#' @return A list, or one fact.
#' @examples
#' current()  # NULL: no step is running here
#'
#' flow <- ledgerflow("WhereAmI") %>%
#'   step(step = "start", r_function = function(self) {
#'     self$origin <- paste(current("flow_name"), current("run_id"), current("task_id"))
#'     if (current("retry_count") > 0) message("attempt ", current("retry_count") + 1)
#'   }, next_step = "end") %>%
#'   step(step = "end")
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
current <- function(value = NULL) {
  facts <- task_facts()
  if (is.null(value)) return(facts)
  if (is.null(facts)) stop("current() has facts only inside a running step", call. = FALSE)
  if (!value %in% names(facts)) {
    stop(sprintf("current() has no %s: it has %s", value,
                 paste(sort(names(facts)), collapse = ", ")), call. = FALSE)
  }
  facts[[value]]
}

#' Read an artifact of a step's `self`
#'
#' `self$name` gives the artifact `name`; one that does not exist is an error that
#' names the artifacts there are (a misspelled name would otherwise read as `NULL`).
#' `exists("name", envir = self)` tells whether one exists.
#'
#' @param x A step's `self`.
#' @param name The artifact's name.
#' @return The artifact's value.
#' @examples
#' flow <- ledgerflow("Totals") %>%
#'   step(step = "start", r_function = function(self) self$total <- 3,
#'        next_step = "end") %>%
#'   step(step = "end", r_function = function(self) {
#'     print(self$total)                     # 3
#'     if (!exists("totl", envir = self)) {  # self$totl would be an error
#'       message("no artifact totl")
#'     }
#'   })
#' if (interactive()) {
#'   run(flow)
#' }
#' @export
`$.ledgerflow_self` <- function(x, name) {
  if (!exists(name, envir = x, inherits = FALSE)) {
    known <- sort(ls(x))
    stop(sprintf(
      "self$%s does not exist: the artifacts here are %s (exists(\"%s\", envir = self) tells whether one does)",
      name, if (length(known)) paste(known, collapse = ", ") else "none", name
    ), call. = FALSE)
  }
  get(name, envir = x, inherits = FALSE)
}

bind_lazy <- function(self, name, loader, changed) {
  if (exists(name, envir = self, inherits = FALSE)) return(invisible())
  value <- NULL
  loaded <- FALSE
  makeActiveBinding(name, function(new) {
    if (missing(new)) {
      if (!loaded) {
        value <<- loader(name)
        loaded <<- TRUE
      }
      value
    } else {
      value <<- new
      loaded <<- TRUE
      assign(name, TRUE, envir = changed)
    }
  }, self)
}

# The artifacts a step set: new names, and loaded ones it assigned.
changed_names <- function(self) {
  every <- ls(self)
  plain <- every[!vapply(every, bindingIsActive, logical(1), env = self)]
  changed <- attr(self, "ledgerflow_changed")
  unique(c(plain, if (is.null(changed)) character() else ls(changed)))
}

# A task's step, in one call from the runtime: the task's facts (JSON, for current()),
# its `self` (`names`: the artifacts it inherits; `input_of`, `merge`: see make_self())
# and, in a join, its `inputs` (`input_names`: each input's artifacts; named by their
# steps where those differ, as a branch's join's are), then run_step().
run_task <- function(step_name, fn, names, loader, input_of = NULL, merge = NULL,
                     input_names = NULL, input_steps = NULL, facts = "{}") {
  set_current(facts)
  self <- make_self(names, loader, 0L, input_of, merge)
  inputs <- NULL
  if (!is.null(input_names)) {
    inputs <- lapply(seq_along(input_names), function(i) make_self(input_names[[i]], loader, i))
    if (!anyDuplicated(input_steps)) names(inputs) <- input_steps
  }
  run_step(step_name, fn, self, inputs)
}

# Runs a step and returns what the runtime stores: its error, or the names, values and
# R serializations of what it set (one call from Python for all of it).
run_step <- function(step_name, fn, self, inputs = NULL) {
  failed <- call_step(step_name, fn, self, inputs)
  if (!is.null(failed)) return(list(failed = failed))
  names <- changed_names(self)
  values <- mget(names, envir = self)
  for (name in names) warn_if_unrestorable(step_name, name, values[[name]])
  list(failed = NULL, names = names, values = values,
       # NULL: stored as its columns (see columnar()). Else native byte order (xdr =
       # FALSE): numbers copied, not swapped one by one; unserialize() reads either.
       rds = lapply(values, function(value) {
         if (columnar(value)) NULL else serialize(value, NULL, xdr = FALSE)
       }),
       lengths = vapply(values, length, integer(1)))
}

# Whether a value is stored as its columns' memory, which the runtime (and the R
# client) rebuild it from exactly (python_client/ledgerflow/datastore/r_columns.py): a plain
# double, integer or logical vector of 10000 elements or more (names its only
# attribute), or a data.frame of such columns (no attributes; unique names; R's own
# row names 1..n) with 10000 values or more.
columnar <- function(value, from = 10000L) {
  plain <- function(x) typeof(x) %in% c("double", "integer", "logical") && is.null(attributes(x))
  if (is.atomic(value)) {
    attrs <- names(attributes(value))
    return(typeof(value) %in% c("double", "integer", "logical") && length(value) >= from &&
             all(attrs == "names") && !anyNA(names(value)))
  }
  if (!identical(class(value), "data.frame") || length(value) == 0L) return(FALSE)
  names <- names(value)
  setequal(names(attributes(value)), c("names", "class", "row.names")) &&
    .row_names_info(value) < 0L && !anyNA(names) && !anyDuplicated(names) &&
    all(vapply(value, plain, logical(1))) && nrow(value) * length(value) >= from
}

# A connection or an external pointer (in an artifact, or in a list it is) is stored,
# but means nothing in another process, where the next step runs: said at once.
warn_if_unrestorable <- function(step_name, name, value) {
  what <- unrestorable(value)
  if (is.null(what)) return(invisible())
  message("Warning in ", step_name, ": self$", name, " ", what, ", which cannot be ",
          "restored in another process (the next step gets a dead handle): store what ",
          "it reads or points to instead (a path, the data)")
}

unrestorable <- function(value, depth = 0L) {
  if (inherits(value, "connection")) return("is a connection")
  if (typeof(value) == "externalptr") return("is an external pointer")
  if (is.list(value) && !is.object(value) && depth < 3L) {
    for (item in value) {
      inner <- unrestorable(item, depth + 1L)
      if (!is.null(inner)) return(sub("^is ", "holds ", inner))
    }
  }
  NULL
}

# Calls a step; NULL when it returns, else its error: message, call and R's call stack.
call_step <- function(step_name, fn, self, inputs = NULL) {
  if (is.null(fn)) return(NULL)
  stack <- character()
  tryCatch(
    withCallingHandlers(
      {
        if (is.null(inputs)) fn(self) else fn(self, inputs)
        NULL
      },
      warning = function(w) {
        message("Warning in ", step_name, ": ", conditionMessage(w))
        invokeRestart("muffleWarning")
      },
      error = function(e) stack <<- step_stack(sys.calls(), step_name)
    ),
    error = function(e) {
      call <- conditionCall(e)
      call <- if (is.null(call)) "" else paste(deparse(call), collapse = " ")
      list(message = conditionMessage(e), call = sub("^fn\\(", paste0(step_name, "("), call),
           stack = stack)
    }
  )
}

# The calls from the step's function down to the error, as traceback() numbers them.
step_stack <- function(calls, step_name) {
  texts <- vapply(calls, function(call) paste(deparse(call), collapse = " "), character(1))
  first <- which(texts %in% c("fn(self)", "fn(self, inputs)"))
  if (length(first) == 0) return(character())
  texts <- texts[first[length(first)]:length(texts)]
  texts[1] <- sub("^fn", step_name, texts[1])
  helpers <- grepl("^(\\.handleSimpleError|h\\(simpleError)", texts)
  texts <- texts[!helpers | seq_along(texts) == 1]
  rev(sprintf("%d: %s", seq_along(texts), texts))
}
