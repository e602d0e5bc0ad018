console.log("flusher main", process.argv.slice(2))
