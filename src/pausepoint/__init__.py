"""pausepoint: durable workflows and agents you can pause, resume, cancel, terminate and steer."""
