"""What reaches residents without being an answer: change detection, the outbox, announcements, jobs."""
